// The chat page: OpenAI chat completions with stream=true, rendered as they arrive.
// Text deltas append to the reply; speech arrives as 24 kHz pcm16 chunks, played as they come and
// gathered into a WAV for the reply's audio player; pictures and music arrive when their span ends.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { history: [], attachments: [], busy: false, recorder: null };

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

// --- start ------------------------------------------------------------------------------------
async function start() {
  $("api-key").value = localStorage.getItem("anygpt-key") || "";
  $("api-key").addEventListener("change", () => localStorage.setItem("anygpt-key", $("api-key").value));
  try {
    const health = await (await fetch("/health")).json();
    $("model").textContent = health.model;
    for (const v of health.voices) $("voice").append(new Option(v, v));
  } catch (e) { status("cannot reach the server: " + e); }
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } });
  $("image-file").addEventListener("change", () => attachFile($("image-file"), "image"));
  $("audio-file").addEventListener("change", () => attachFile($("audio-file"), $("audio-kind").value));
  $("record").addEventListener("click", toggleRecording);
  $("reset").addEventListener("click", () => { state.history = []; $("log").innerHTML = ""; status(""); });
  for (const b of document.querySelectorAll(".hint")) {
    b.addEventListener("click", () => { $("text").value = b.dataset.text; $("want").value = b.dataset.want; $("text").focus(); });
  }
}

function status(text, spinning) {
  $("status").innerHTML = spinning ? '<span class="spinner"></span>' : "";
  $("status").append(text);
}

// --- attachments ----------------------------------------------------------------------------------
function readAsDataURL(blob) {
  return new Promise((ok, fail) => { const r = new FileReader(); r.onload = () => ok(r.result); r.onerror = fail; r.readAsDataURL(blob); });
}

async function attachFile(input, kind) {
  const file = input.files[0];
  input.value = "";
  if (!file) return;
  addAttachment(kind, file.name, await readAsDataURL(file), file.type);
}

function addAttachment(kind, name, url, mime) {
  const item = { kind, name, url, mime };
  state.attachments.push(item);
  const chip = document.createElement("span");
  chip.className = "chip";
  chip.textContent = `${kind}: ${name} `;
  const x = document.createElement("button");
  x.type = "button"; x.textContent = "×"; x.title = "remove";
  x.onclick = () => { state.attachments.splice(state.attachments.indexOf(item), 1); chip.remove(); };
  chip.append(x);
  $("attachments").append(chip);
}

function audioFormat(mime, name) {
  const m = (mime || "") + " " + (name || "");
  for (const f of ["mp3", "flac", "ogg"]) if (m.includes(f) || (f === "mp3" && m.includes("mpeg"))) return f;
  return "wav";
}

// --- microphone: raw samples -> WAV (the server reads WAV, FLAC, MP3 and OGG) ------------------------
async function toggleRecording() {
  if (state.recorder) { finishRecording(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ctx = new AudioContext();
    const source = ctx.createMediaStreamSource(stream);
    const node = ctx.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    source.connect(node); node.connect(ctx.destination);
    state.recorder = { stream, ctx, node, chunks };
    $("record").classList.add("on"); $("record").textContent = "■ stop";
  } catch (e) { status("no microphone: " + e.message); }
}

async function finishRecording() {
  const r = state.recorder; state.recorder = null;
  r.node.disconnect(); r.stream.getTracks().forEach((t) => t.stop());
  const wav = wavBlob(concat(r.chunks), r.ctx.sampleRate);
  await r.ctx.close();
  $("record").classList.remove("on"); $("record").textContent = "● record";
  addAttachment($("audio-kind").value, "recording.wav", await readAsDataURL(wav), "audio/wav");
}

function concat(parts) {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function wavBlob(samples, rate) {
  const buf = new ArrayBuffer(44 + samples.length * 2), v = new DataView(buf);
  const text = (at, s) => { for (let i = 0; i < s.length; i++) v.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF"); v.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVEfmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true); v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true); text(36, "data");
  v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) v.setInt16(44 + i * 2, Math.max(-1, Math.min(1, samples[i])) * 32767, true);
  return new Blob([buf], { type: "audio/wav" });
}

function pcm16ToFloat(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const v = new DataView(bytes.buffer), out = new Float32Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = v.getInt16(i * 2, true) / 32768;
  return out;
}

// --- the conversation -----------------------------------------------------------------------------
function bubble(role) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  $("log").append(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function addImage(parent, url) {
  const img = document.createElement("img");
  img.src = url; img.alt = "picture";
  parent.append(img);
}

function addAudio(parent, url, label) {
  const lab = document.createElement("div");
  lab.className = "label"; lab.textContent = label;
  const audio = document.createElement("audio");
  audio.controls = true; audio.preload = "auto"; audio.src = url;
  audio.dataset.kind = label;
  parent.append(lab, audio);
}

async function send() {
  if (state.busy) return;
  const text = $("text").value.trim();
  if (!text && !state.attachments.length) { status("type a message or attach a picture or a sound"); return; }
  const parts = [], user = bubble("user");
  for (const a of state.attachments) {
    if (a.kind === "image") { parts.push({ type: "image_url", image_url: { url: a.url } }); addImage(user, a.url); }
    else {
      parts.push({ type: "input_audio", input_audio: { data: a.url.split(",")[1], format: audioFormat(a.mime, a.name), modality: a.kind } });
      addAudio(user, a.url, a.kind);
    }
  }
  if (text) { parts.push({ type: "text", text }); user.append(document.createTextNode(text)); }
  state.attachments = []; $("attachments").innerHTML = ""; $("text").value = "";
  const want = $("want").value;
  const body = { model: $("model").textContent || "anygpt", stream: true,
                 messages: [...state.history, { role: "user", content: parts }],
                 audio: { voice: $("voice").value || undefined, format: "pcm16" } };
  if (want) body.modalities = want === "text" ? ["text"] : ["text", want === "speech" ? "audio" : want];
  await converse(body);
}

async function converse(body) {
  state.busy = true; $("send").disabled = true;
  const started = performance.now();
  const tick = setInterval(() => status(`generating… ${((performance.now() - started) / 1000).toFixed(1)} s`, true), 100);
  const reply = bubble("assistant");
  const textNode = document.createTextNode("");
  reply.append(textNode);
  const speech = { chunks: [], player: null, next: 0 };
  let replyId = null, ok = false;
  try {
    const response = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!response.ok) {
      const err = await response.json().catch(() => ({ error: { message: response.statusText } }));
      throw new Error(`${response.status}: ${err.error ? err.error.message : response.statusText}`);
    }
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).trim(); buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") { ok = true; continue; }
        const doc = JSON.parse(data);
        if (doc.error) throw new Error(doc.error.message);
        const delta = (doc.choices[0] || {}).delta || {};
        if (delta.reply_id) replyId = delta.reply_id;
        if (delta.content) textNode.appendData(delta.content);
        if (delta.audio && delta.audio.data) playChunk(speech, pcm16ToFloat(delta.audio.data));
        for (const im of delta.images || []) addImage(reply, im.image_url.url);
        if (delta.music) addAudio(reply, "data:audio/wav;base64," + delta.music.data, "music");
        reply.scrollIntoView({ block: "end" });
      }
    }
    if (speech.chunks.length) addAudio(reply, URL.createObjectURL(wavBlob(concat(speech.chunks), 24000)), "speech");
    status(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    reply.className = "msg error";
    reply.append(document.createTextNode((textNode.data ? "\n" : "") + "error: " + e.message));
    status("");
  } finally {
    clearInterval(tick);
    if (!ok && !reply.classList.contains("error")) status("");
    state.busy = false; $("send").disabled = false;
  }
  if (ok) {
    state.history = body.messages.concat([{ role: "assistant", content: textNode.data || "", reply_id: replyId || undefined }]);
  }
}

function playChunk(speech, samples) {
  speech.chunks.push(samples);
  try {
    speech.player = speech.player || new AudioContext({ sampleRate: 24000 });
    const ctx = speech.player, buf = ctx.createBuffer(1, samples.length, 24000);
    buf.copyToChannel(samples, 0);
    const src = ctx.createBufferSource();
    src.buffer = buf; src.connect(ctx.destination);
    speech.next = Math.max(speech.next, ctx.currentTime);
    src.start(speech.next);
    speech.next += buf.duration;
  } catch (e) { /* no audio output: the player below still gets the whole reply */ }
}

start();
