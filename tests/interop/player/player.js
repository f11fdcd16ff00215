// Plays ?src= with hls.js until currentTime has advanced ?seconds= past the first "playing",
// then POSTs what happened to /report on this page's origin (the test reads it there).
"use strict";

const MAX_LISTED_FRAGS = 50; // enough to show which URLs were fetched, bounded
const POLL_MS = 200;

const query = new URLSearchParams(location.search);
const src = query.get("src");
const needSeconds = Number(query.get("seconds"));
const budgetMs = Number(query.get("budget_ms"));
// ?start=<s>: play from there instead of hls.js's live-edge choice
const startPosition = query.has("start") ? Number(query.get("start")) : -1;
// ?low_latency=0|1: hls.js's lowLatencyMode (absent: hls.js's default)
const lowLatency = query.has("low_latency") ? query.get("low_latency") === "1" : undefined;
const video = document.getElementById("video");

const report = {
  outcome: null,
  hls_version: typeof Hls === "undefined" ? null : Hls.version,
  page_origin: location.origin,
  fatal: null,
  errors: [],
  frags: [],
  start_time_s: null,
  current_time_s: null,
  // Seconds behind the live edge while playing: wall clock minus hls.playingDate (the
  // EXT-X-PROGRAM-DATE-TIME of what is on screen), sampled every POLL_MS.
  latency_s: [],
};
let finished = false;

function finish(outcome) {
  if (finished) return;
  finished = true;
  const quality = video.getVideoPlaybackQuality();
  Object.assign(report, {
    outcome,
    current_time_s: video.currentTime,
    width: video.videoWidth,
    height: video.videoHeight,
    video_frames: quality.totalVideoFrames,
    dropped_frames: quality.droppedVideoFrames,
    // Chromium's counters of bytes handed to each decoder: audio really was decoded.
    audio_bytes: video.webkitAudioDecodedByteCount ?? null,
    video_bytes: video.webkitVideoDecodedByteCount ?? null,
    media_error: video.error ? video.error.code : null,
  });
  fetch("/report", { method: "POST", body: JSON.stringify(report) });
}

function start() {
  if (typeof Hls === "undefined" || !Hls.isSupported()) {
    finish("unsupported");
    return;
  }
  const config = { startPosition };
  if (lowLatency !== undefined) config.lowLatencyMode = lowLatency;
  const hls = new Hls(config);
  hls.on(Hls.Events.ERROR, (_event, data) => {
    report.errors.push({
      type: data.type,
      details: data.details,
      fatal: data.fatal,
      url: (data.frag && data.frag.url) || (data.context && data.context.url) || null,
      // HTTP status as the page sees it: 0 when CORS hid the answer from the page
      status: data.response ? data.response.code : null,
    });
    if (data.fatal) {
      report.fatal = data.details;
      finish("fatal");
    }
  });
  hls.on(Hls.Events.FRAG_BUFFERED, (_event, data) => {
    if (report.frags.length < MAX_LISTED_FRAGS) report.frags.push(data.frag.url);
  });
  video.addEventListener("playing", () => {
    if (report.start_time_s === null) report.start_time_s = video.currentTime;
  });
  hls.loadSource(src);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    video.play().catch((e) => report.errors.push({ type: "play", details: String(e) }));
  });
  const poll = setInterval(() => {
    if (report.start_time_s !== null && hls.playingDate && !video.paused) {
      report.latency_s.push((Date.now() - hls.playingDate.getTime()) / 1000);
    }
    if (report.start_time_s !== null && video.currentTime - report.start_time_s >= needSeconds) {
      clearInterval(poll);
      finish("played");
    }
  }, POLL_MS);
  setTimeout(() => finish("timeout"), budgetMs);
}

start();
