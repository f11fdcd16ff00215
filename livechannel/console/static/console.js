// livechannel console: plain JavaScript, no build step. Views: sign-in, channels, channel.
// Data comes from ./api/ (same origin, session cookie); every change carries the CSRF token.
"use strict";

const LIST_REFRESH_MS = 2000; // the channels table: live figures at most 2 s old
const CHANNEL_REFRESH_MS = 1000; // a channel's page: a kick shows within a second
const FPS_HISTORY_MS = 5 * 60 * 1000; // the frame-rate graph keeps the last 5 minutes
const PAGE_SIZE = 50;
const GRAPH_MIN_SPAN_MS = 60 * 1000;
const PREVIEW_RETRY_MS = 3000; // after a fatal player error, wait this long before retrying

const $ = (sel) => document.querySelector(sel);
const state = { csrf: null, keyId: null, bucket: null, marker: "", markers: [], timer: null,
  channel: null, hls: null, fps: [], urls: null, lastLive: null, busy: false };

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  if (method !== "GET") options.headers["X-Console-CSRF"] = state.csrf || "";
  const response = await fetch("api" + path, options);
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== "/session") {
    signedOut("Your session ended; sign in again.");
  }
  if (!response.ok) {
    const e = data.error || {};
    throw new ApiError(response.status, e.code || "Error", e.message || response.statusText);
  }
  return data;
}

const q = (params) => new URLSearchParams(params).toString();

// --- formatting ----------------------------------------------------------------------------
function bitrate(bps) {
  if (bps === null || bps === undefined) return "–";
  if (bps >= 1e6) return (bps / 1e6).toFixed(2) + " Mbit/s";
  return Math.round(bps / 1e3) + " kbit/s";
}
const num = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const clock = (ms) => (ms ? new Date(ms).toLocaleString() : "–");
function span(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

// --- views ---------------------------------------------------------------------------------
function show(view) {
  for (const id of ["signin", "list", "channel"]) $("#view-" + id).hidden = id !== view;
  $("#signout").hidden = view === "signin";
  $("#who").textContent = view === "signin" ? "" : state.keyId || "";
}

function stopTimer() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

function every(ms, fn) {
  stopTimer();
  const tick = async () => {
    if (!document.hidden) {
      try { await fn(); } catch (e) { if (!(e instanceof ApiError && e.status === 401)) console.warn(e); }
    }
    if (state.timer !== null) state.timer = setTimeout(tick, ms);
  };
  state.timer = setTimeout(tick, 0);
}

function signedOut(message) {
  stopTimer();
  stopPreview();
  state.csrf = null;
  $("#signin-error").textContent = message || "";
  show("signin");
}

async function route() {
  if (!state.csrf) return;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  stopPreview();
  if (parts[0] === "c" && parts.length === 3) return openChannel(parts[1], parts[2]);
  if (parts[0] === "b" && parts[1]) state.bucket = parts[1];
  return openList();
}

// --- sign-in -------------------------------------------------------------------------------
$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#signin-error").textContent = "";
  try {
    const session = await api("POST", "/session",
      { access_key_id: $("#key-id").value.trim(), secret: $("#secret").value });
    $("#secret").value = "";
    started(session);
  } catch (e) {
    $("#signin-error").textContent = e.message;
  }
});

$("#signout").addEventListener("click", async () => {
  try { await api("DELETE", "/session"); } catch (e) { /* signed out either way */ }
  signedOut("Signed out.");
});

function started(session) {
  state.csrf = session.csrf;
  state.keyId = session.access_key_id;
  route();
}

// --- channels table ------------------------------------------------------------------------
async function openList() {
  show("list");
  const { buckets } = await api("GET", "/buckets");
  const select = $("#bucket");
  select.replaceChildren(...buckets.map((b) => el("option", b.name)));
  if (!state.bucket || !buckets.some((b) => b.name === state.bucket)) state.bucket = buckets[0].name;
  select.value = state.bucket;
  every(LIST_REFRESH_MS, refreshList);
}

async function refreshList() {
  const data = await api("GET", "/channels?" + q({ bucket: state.bucket,
    prefix: $("#filter").value, marker: state.marker, limit: PAGE_SIZE }));
  const rows = data.channels.map((c) => channelRow(c, data.now_ms));
  $("#channels tbody").replaceChildren(...rows);
  const live = data.channels.filter((c) => c.live).length;
  const page = state.markers.length + 1;
  $("#list-summary").textContent = `${data.channels.length} channels on page ${page}, ${live} live`
    + (data.channels.length ? "" : " — none match");
  $("#next-page").disabled = !data.next_marker;
  $("#first-page").disabled = !state.marker;
  state.nextMarker = data.next_marker;
  $("#list-updated").textContent = "updated " + new Date(data.now_ms).toLocaleTimeString();
}

function channelRow(c, now) {
  const tr = el("tr");
  tr.dataset.name = c.name;
  const link = el("a", c.name);
  link.href = "#/c/" + encodeURIComponent(state.bucket) + "/" + encodeURIComponent(c.name);
  const name = el("td"); name.append(link);
  const status = el("td"); status.append(el("span", c.status, "badge " + c.status));
  const live = el("td"); live.append(el("span", c.live ? "live" : "idle", "badge " + (c.live ? "live" : "")));
  const cells = [
    name, status, live,
    el("td", c.width ? `${c.width}×${c.height}` : "–"),
    el("td", num(c.frame_rate, 1)),
    el("td", c.live ? bitrate(c.video_bps) : "–"),
    el("td", c.live ? bitrate(c.audio_bps) : "–"),
    el("td", c.keyframe_interval_ms ? (c.keyframe_interval_ms / 1000).toFixed(1) + " s" : "–"),
    el("td", c.push ? c.push.remote_addr : "–"),
    el("td", c.push ? `${new Date(c.push.start_ms).toLocaleTimeString()} (${span(now - c.push.start_ms)})` : "–"),
    el("td", c.warnings.join("; "), "warn"),
  ];
  tr.append(...cells);
  return tr;
}

$("#bucket").addEventListener("change", () => {
  state.bucket = $("#bucket").value; state.marker = ""; state.markers = [];
  location.hash = "#/b/" + encodeURIComponent(state.bucket);
});
$("#filter").addEventListener("input", () => { state.marker = ""; state.markers = []; refreshList(); });
$("#next-page").addEventListener("click", () => {
  if (!state.nextMarker) return;
  state.markers.push(state.marker); state.marker = state.nextMarker; refreshList();
});
$("#first-page").addEventListener("click", () => { state.marker = ""; state.markers = []; refreshList(); });
$("#new-channel").addEventListener("click", () => { $("#create-form").hidden = false; });
$("#create-cancel").addEventListener("click", () => { $("#create-form").hidden = true; });
$("#create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { bucket: state.bucket };
  for (const [key, value] of form.entries()) body[key] = String(value).trim();
  $("#create-error").textContent = "";
  try {
    const made = await api("POST", "/channels", body);
    event.target.reset();
    event.target.hidden = true;
    location.hash = "#/c/" + encodeURIComponent(made.bucket) + "/" + encodeURIComponent(made.channel.name);
  } catch (e) {
    $("#create-error").textContent = `${e.code}: ${e.message}`;
  }
});

// --- one channel ---------------------------------------------------------------------------
async function openChannel(bucket, name) {
  state.bucket = bucket;
  state.channel = { bucket, name };
  state.fps = [];
  state.lastLive = null;
  $("#ch-name").textContent = name;
  $("#ch-note").textContent = "";
  $("#action-msg").textContent = "";
  $("#figures").replaceChildren();
  $("#history tbody").replaceChildren();
  $("#vod-result").hidden = true;
  $("#vod-error").textContent = "";
  for (const id of ["publish-url", "obs-server", "obs-key", "play-url"]) $("#" + id).value = "";
  const now = new Date();
  setLocal($("#vod-end"), now);
  setLocal($("#vod-start"), new Date(now.getTime() - 60_000));
  show("channel");
  await loadUrls();
  every(CHANNEL_REFRESH_MS, refreshChannel);
}

function setLocal(input, date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  input.value = local.toISOString().slice(0, 19);
}

async function loadUrls() {
  const { bucket, name } = state.channel;
  const urls = await api("GET", "/urls?" + q({ bucket, name, expires_s: $("#expiry").value }));
  if (!state.channel || state.channel.bucket !== bucket || state.channel.name !== name) return;
  state.urls = urls;
  $("#publish-url").value = urls.publish_url;
  $("#obs-server").value = urls.obs_server;
  $("#obs-key").value = urls.obs_stream_key;
  $("#play-url").value = urls.play_url;
  // RTMP in TLS, when the service listens for it (the stream key is the same).
  $(".rtmps").hidden = !urls.rtmps;
  $("#rtmps-url").value = urls.rtmps ? urls.rtmps.publish_url : "";
  $("#rtmps-server").value = urls.rtmps ? urls.rtmps.obs_server : "";
  $("#urls-expire").textContent = "until " + clock(urls.expires_ms);
}
$("#expiry").addEventListener("change", loadUrls);

async function refreshChannel() {
  const { bucket, name } = state.channel;
  let data;
  try {
    data = await api("GET", "/channel?" + q({ bucket, name }));
  } catch (e) {
    if (e.code === "NoSuchLiveChannel") {
      stopTimer(); stopPreview();
      $("#ch-note").textContent = "This channel does not exist (any more).";
      return;
    }
    throw e;
  }
  const c = data.channel;
  if (state.channel === null || state.channel.name !== c.name) return;
  $("#ch-status").textContent = c.status;
  $("#ch-status").className = "badge " + c.status;
  $("#ch-state").textContent = c.live ? "live" : "idle";
  $("#ch-state").className = "badge " + (c.live ? "live" : "");
  $("#toggle-status").textContent = c.status === "enabled" ? "Disable" : "Enable";
  if (state.lastLive === true && !c.live) {
    $("#ch-note").textContent = c.status === "disabled"
      ? "Disabled: the publisher was disconnected." : "The publisher left.";
  } else if (c.live) {
    $("#ch-note").textContent = "";
  }
  state.lastLive = c.live;
  figuresOf(c, data.now_ms);
  if (c.live && c.frame_rate !== null) state.fps.push({ t: data.now_ms, v: c.frame_rate });
  state.fps = state.fps.filter((p) => p.t >= data.now_ms - FPS_HISTORY_MS);
  const rates = data.bitrate.map((p) => ({ t: p.t_ms, v: p.bps }));
  graph($("#graph-bitrate"), $("#graph-bitrate-label"), rates,
    graphStart(rates, data.now_ms, data.graph_window_s * 1000), data.now_ms, bitrate);
  graph($("#graph-fps"), $("#graph-fps-label"), state.fps,
    graphStart(state.fps, data.now_ms, FPS_HISTORY_MS), data.now_ms, (v) => num(v, 1) + " fps");
  snapshot(data.snapshot);
  history(data.history);
  if (c.live && !state.hls && !state.clip && Date.now() >= (state.previewAfter || 0)) {
    startPreview(state.urls.preview_url);
  }
}

function figuresOf(c, now) {
  const rows = [
    ["Resolution", c.width ? `${c.width}×${c.height}` : "–"],
    ["Codecs", [c.video_codec, c.audio_codec].filter(Boolean).join(" + ") || "–"],
    ["Frame rate", num(c.frame_rate, 2)],
    ["Video", c.live ? bitrate(c.video_bps) : "–"],
    ["Audio", c.live ? bitrate(c.audio_bps) + (c.sample_rate ? ` · ${c.sample_rate} Hz` : "") : "–"],
    ["Keyframe interval", c.keyframe_interval_ms ? (c.keyframe_interval_ms / 1000).toFixed(2) + " s" : "–"],
    ["Publisher", c.push ? c.push.remote_addr : "–"],
    ["Live since", c.push ? `${clock(c.push.start_ms)} (${span(now - c.push.start_ms)})` : "–"],
    ["Segments", num(c.segments)],
    ["Target", `FragDuration ${c.frag_duration_s} s, FragCount ${c.frag_count}, ${c.playlist_name}`],
    ["Snapshots", c.snapshot_interval_s ? `every ${c.snapshot_interval_s} s` : "off"],
    ["Warnings", c.warnings.length ? c.warnings.join("; ") : "none"],
  ];
  const nodes = [];
  for (const [k, v] of rows) nodes.push(el("dt", k), el("dd", v));
  $("#figures").replaceChildren(...nodes);
}

// The x axis spans the data (at least GRAPH_MIN_SPAN_MS, at most the window): a stream that
// started a minute ago fills the graph instead of hugging its right edge.
function graphStart(points, now, windowMs) {
  const first = points.length ? points[0].t : now;
  return Math.max(now - windowMs, Math.min(first, now - GRAPH_MIN_SPAN_MS));
}

function graph(svg, label, points, t0, t1, format) {
  const ns = "http://www.w3.org/2000/svg";
  const max = Math.max(1, ...points.map((p) => p.v));
  const line = document.createElementNS(ns, "polyline");
  const w = 300, h = 80;
  line.setAttribute("points", points.map((p) =>
    `${((p.t - t0) / Math.max(1, t1 - t0) * w).toFixed(1)},${(h - (p.v / max) * (h - 4)).toFixed(1)}`).join(" "));
  const base = document.createElementNS(ns, "line");
  for (const [k, v] of [["x1", 0], ["x2", w], ["y1", h - 0.5], ["y2", h - 0.5]]) base.setAttribute(k, v);
  svg.replaceChildren(base, line);
  const last = points.length ? points[points.length - 1].v : null;
  label.textContent = points.length ? `now ${format(last)} · peak ${format(max)}` : "no data yet";
}

function snapshot(shot) {
  $("#snapshot-box").hidden = !shot;
  if (!shot) return;
  if ($("#snapshot").dataset.taken !== String(shot.taken_ms)) {
    $("#snapshot").src = shot.url;
    $("#snapshot").dataset.taken = String(shot.taken_ms);
  }
  $("#snapshot-time").textContent = clock(shot.taken_ms);
}

function history(pushes) {
  if (!pushes.length) {
    const td = el("td", "No finished push yet.", "muted");
    td.colSpan = 4;
    const tr = el("tr");
    tr.append(td);
    $("#history tbody").replaceChildren(tr);
    return;
  }
  $("#history tbody").replaceChildren(...pushes.map((p) => {
    const tr = el("tr");
    tr.append(el("td", clock(p.start_ms)), el("td", clock(p.end_ms)),
      el("td", p.end_ms ? span(p.end_ms - p.start_ms) : "–"), el("td", p.remote_addr));
    return tr;
  }));
}

// --- preview -------------------------------------------------------------------------------
function startPreview(url) {
  stopPreview();
  const video = $("#preview");
  $("#preview-note").textContent = "";
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls({ liveDurationInfinity: true });
    state.hls = hls;
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      $("#preview-note").textContent = "Preview stopped: " + data.details + " (retrying)";
      const wasClip = state.clip;
      stopPreview(); // a later refresh starts it again while the channel is live
      state.previewAfter = Date.now() + PREVIEW_RETRY_MS;
      if (!wasClip) loadUrls().catch(() => {}); // the signed URL may have run out
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url; // Safari plays HLS itself
    state.hls = { destroy() { video.removeAttribute("src"); video.load(); } };
  } else {
    $("#preview-note").textContent = "This browser cannot play HLS.";
    return;
  }
  video.play().catch(() => {});
}

function stopPreview() {
  if (state.hls) state.hls.destroy();
  state.hls = null;
  state.clip = false;
}

// --- actions -------------------------------------------------------------------------------
async function act(button, fn) {
  $("#action-msg").textContent = "";
  button.disabled = true;
  try { await fn(); } catch (e) { $("#action-msg").textContent = `${e.code}: ${e.message}`; }
  finally { button.disabled = false; }
}

$("#toggle-status").addEventListener("click", (event) => act(event.target, async () => {
  const { bucket, name } = state.channel;
  const status = $("#toggle-status").textContent === "Disable" ? "disabled" : "enabled";
  await api("POST", "/channel/status", { bucket, name, status });
  if (status === "disabled") $("#ch-note").textContent = "Disabled: the publisher is disconnected.";
  await refreshChannel();
}));

$("#delete").addEventListener("click", (event) => act(event.target, async () => {
  const { bucket, name } = state.channel;
  if (!confirm(`Delete channel ${name}? Its segments stay in the bucket.`)) return;
  await api("POST", "/channel/delete", { bucket, name });
  location.hash = "#/b/" + encodeURIComponent(bucket);
}));

$("#vod-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#vod-error").textContent = "";
  const { bucket, name } = state.channel;
  const seconds = (input) => String(Math.floor(new Date(input.value).getTime() / 1000));
  try {
    const clip = await api("POST", "/vod", { bucket, name, playlist_name: $("#vod-name").value.trim(),
      start_s: seconds($("#vod-start")), end_s: seconds($("#vod-end")) });
    $("#vod-url").value = new URL(clip.url, location.href).href;
    $("#vod-result").hidden = false;
  } catch (e) {
    $("#vod-error").textContent = `${e.code}: ${e.message}`;
  }
});

$("#vod-play").addEventListener("click", () => {
  startPreview($("#vod-url").value);
  state.clip = true; // the live refresh leaves the clip playing
});

document.addEventListener("click", async (event) => {
  const id = event.target.dataset && event.target.dataset.copy;
  if (!id) return;
  const input = document.getElementById(id);
  try { await navigator.clipboard.writeText(input.value); event.target.textContent = "Copied"; }
  catch (e) { input.select(); document.execCommand("copy"); event.target.textContent = "Copied"; }
  setTimeout(() => { event.target.textContent = "Copy"; }, 1500);
});

window.addEventListener("hashchange", route);

// Already signed in (the cookie is HttpOnly: only the server can tell)?
api("GET", "/session").then(started).catch(() => signedOut(""));
