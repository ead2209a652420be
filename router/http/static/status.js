// The status page: polls GET /status, and streams playground answers. No build step.
"use strict";

const $ = (id) => document.getElementById(id);

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
}

function ms(value) {
  return `${value.toFixed(1)} ms`;
}

function render(status) {
  const policy = status.policy;
  const stats = policy.stats;
  $("policy-version").textContent = policy.version;
  $("pre-threshold").textContent = policy.pre_generation_threshold.toFixed(2);
  $("cascade-threshold").textContent = policy.cascade_threshold.toFixed(2);
  $("requests").textContent = stats.requests;
  $("escalation-rate").textContent = `${(100 * stats.escalation_rate).toFixed(1)} %`;
  $("deadline-misses").textContent = stats.deadline_misses;
  const up = Object.entries(status.tiers).filter(([, ok]) => ok).map(([tier]) => tier);
  $("tiers").textContent = up.length ? up.join(" + ") : "none";
  const shares = $("shares");
  shares.replaceChildren();
  for (const [route, share] of Object.entries(stats.route_share)) {
    const line = document.createElement("div");
    line.className = "share";
    const label = document.createElement("span");
    label.textContent = `${route} ${(100 * share).toFixed(0)} %`;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${20 * share}rem`;
    line.append(label, bar);
    shares.append(line);
  }
  const rows = $("decisions");
  rows.replaceChildren();
  for (const decision of status.recent) {
    const row = rows.insertRow();
    row.dataset.requestId = decision.request_id;
    cell(row, new Date(decision.at * 1000).toLocaleTimeString());
    cell(row, decision.route);
    cell(row, decision.reason);
    cell(row, ms(decision.total_ms), "num");
    cell(row, ms(decision.edge_ms), "num");
    cell(row, ms(decision.cloud_ms), "num");
    cell(row, decision.prompt ?? "(not stored)", decision.prompt ? "" : "muted");
  }
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function refresh() {
  const response = await fetch("/status");
  if (response.ok) render(await response.json());
}

async function poll() {
  try {
    await refresh();
  } finally {
    setTimeout(poll, 1000);
  }
}

async function send() {
  const answer = $("answer");
  answer.textContent = "";
  $("decision").textContent = "…";
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: $("model").value,
      messages: [{ role: "user", content: $("prompt").value }],
      stream: true,
      sllm: { stream_resets: true },
    }),
  });
  if (!response.ok) {
    $("decision").textContent = (await response.json()).error.message;
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    const events = buffered.split("\n\n");
    buffered = events.pop();
    for (const event of events) {
      const data = event.replace(/^data: /, "");
      if (data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) {
        $("decision").textContent = chunk.error.message;
        continue;
      }
      const sllm = chunk.sllm;
      if (sllm && sllm.reset) {
        answer.textContent = "";
        $("decision").textContent = `reset: ${sllm.reset.reason}`;
      } else if (sllm) {
        $("decision").textContent = sllm.decision.reason;
      }
      const delta = chunk.choices[0]?.delta?.content;
      if (delta) answer.textContent += delta;
    }
  }
  await refresh();
}

$("send").addEventListener("click", send);
poll();
