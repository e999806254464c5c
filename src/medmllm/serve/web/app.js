// medmllm web UI: streamed answers from /v1/ask (text) or /v1/chat/completions (with an image).
"use strict";
const $ = (id) => document.getElementById(id);
const log = $("log");
let modelName = "default";

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value || sessionStorage.getItem("medmllm-key");
  if (key) { h["Authorization"] = "Bearer " + key; sessionStorage.setItem("medmllm-key", key); }
  return h;
}

function add(cls, text) {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  const span = document.createElement("div");
  span.className = "text";
  span.textContent = text || "";
  div.appendChild(span);
  log.appendChild(div);
  return div;
}

async function* sse(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 2);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

function showCrisis(text) {
  $("crisis-text").textContent = text;
  $("crisis").hidden = false;
}

function render(div, answer) {
  const textDiv = div.querySelector(".text");
  const g = answer.grounding;
  if (g && g.sentences && g.sentences.length) {
    textDiv.textContent = "";
    for (const s of g.sentences) {
      const span = document.createElement("span");
      span.className = "sentence";
      span.textContent = s.text + " ";
      const badge = document.createElement("span");
      badge.className = "badge " + (s.supported ? "ok" : "no");
      badge.textContent = s.supported ? "grounded [" + s.best_passage + "]" : "unsupported";
      badge.title = "support " + s.support;
      span.appendChild(badge);
      textDiv.appendChild(span);
      textDiv.appendChild(document.createTextNode(" "));
    }
  }
  if (answer.citations && answer.citations.length) {
    const c = document.createElement("div");
    c.className = "citations";
    c.textContent = "Sources: ";
    for (const cit of answer.citations) {
      const a = document.createElement("a");
      a.className = "citation";
      a.textContent = "[" + cit.n + "] " + (cit.title || cit.doc_id);
      a.href = cit.url || "#passage-" + cit.n;
      if (cit.url) { a.target = "_blank"; a.rel = "noopener"; }
      c.appendChild(a);
    }
    div.appendChild(c);
  }
  if (answer.passages && answer.passages.length) {
    const d = document.createElement("details");
    const sum = document.createElement("summary");
    sum.textContent = "Retrieved passages";
    d.appendChild(sum);
    for (const p of answer.passages) {
      const pre = document.createElement("p");
      pre.id = "passage-" + p.n;
      pre.textContent = "[" + p.n + "] " + ((p.chunk && p.chunk.text) || "");
      d.appendChild(pre);
    }
    div.appendChild(d);
  }
  if (answer.crisis && answer.crisis.flagged) showCrisis(answer.answer);
}

function fail(div, status, body) {
  const msg = (body && body.error && body.error.message) || ("HTTP " + status);
  const e = document.createElement("div");
  e.className = "error";
  e.textContent = msg;
  div.appendChild(e);
}

async function askText(question, div) {
  const r = await fetch("v1/ask", { method: "POST", headers: headers(),
    body: JSON.stringify({ question, stream: true }) });
  if (!r.ok) return fail(div, r.status, await r.json().catch(() => null));
  const textDiv = div.querySelector(".text");
  for await (const ev of sse(r)) {
    if (ev.delta) textDiv.textContent += ev.delta;
    if (ev.answer) render(div, ev.answer);
    if (ev.error) fail(div, 500, ev);
  }
  div.dataset.done = "1";
}

function readImage(file) {
  return new Promise((resolve, reject) => {
    const fr = new FileReader();
    fr.onload = () => resolve(fr.result);
    fr.onerror = reject;
    fr.readAsDataURL(file);
  });
}

async function askImage(question, file, div) {
  const url = await readImage(file);
  const body = { model: modelName, stream: true, messages: [{ role: "user", content: [
    { type: "text", text: question }, { type: "image_url", image_url: { url } }] }] };
  const r = await fetch("v1/chat/completions", { method: "POST", headers: headers(),
    body: JSON.stringify(body) });
  if (!r.ok) return fail(div, r.status, await r.json().catch(() => null));
  const textDiv = div.querySelector(".text");
  for await (const ev of sse(r)) {
    const delta = ev.choices && ev.choices[0] && ev.choices[0].delta;
    if (delta && delta.content) textDiv.textContent += delta.content;
    if (ev.medmllm && ev.medmllm.crisis && ev.medmllm.crisis.flagged) showCrisis(textDiv.textContent);
    if (ev.error) fail(div, 500, ev);
  }
  div.dataset.done = "1";
}

$("image").addEventListener("change", () => {
  const f = $("image").files[0];
  $("image-name").textContent = f ? f.name : "";
});

$("ask").addEventListener("submit", async (e) => {
  e.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const file = $("image").files[0];
  const u = add("user", question);
  if (file) {
    const img = document.createElement("img");
    img.src = URL.createObjectURL(file);
    img.style.maxHeight = "120px";
    img.className = "upload";
    u.appendChild(img);
  }
  $("question").value = "";
  const div = add("bot", "");
  $("send").disabled = true;
  try {
    if (file) await askImage(question, file, div); else await askText(question, div);
  } catch (err) {
    fail(div, 0, { error: { message: String(err) } });
  } finally {
    $("send").disabled = false;
    $("image").value = "";
    $("image-name").textContent = "";
  }
});

fetch("v1/models", { headers: headers() }).then((r) => r.ok ? r.json() : null).then((j) => {
  if (j && j.data && j.data.length) { modelName = j.data[0].id; $("model").textContent = modelName; }
}).catch(() => {});
