// s3kp view: the gallery and detail view of the results API, served by `s3kp view` (same origin).
// Every value from a result is inserted with textContent or as an attribute, never as HTML.
"use strict";

const PAGE_SIZE = 48;
const state = {
  config: null,
  filters: {},
  items: [],          // summaries, in gallery order
  byId: new Map(),    // result_id -> summary
  cursor: null,
  done: false,
  loading: false,
  openId: null,
  detail: null,       // the open result (detail shape)
  drawable: false,    // the image shown is the clean source: predictions can be drawn over it
  frames: new Map(),  // a video's pages of frames, by first frame (the open result's only)
};
const FRAMES_PAGE = 50;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
};

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    throw new Error((body && body.message) || `HTTP ${response.status}`);
  }
  return body;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
  return search.toString();
}

function showMessage(text, isError = false) {
  const message = $("message");
  message.textContent = text;
  message.classList.toggle("error", isError);
}

// ------------------------------------------------------------------ gallery
function relativeTime(iso) {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  if (!Number.isFinite(seconds)) return iso;
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function card(item) {
  const link = el("a", { className: "card", href: `#/r/${item.result_id}`, "data-id": item.result_id });
  const thumb = el("div", { className: "thumb" });
  const video = item.media_type === "video";
  if (item.links && item.links.annotated) {
    const media = video ? "&media=video" : "";
    const img = el("img", {
      src: `/api/results/${item.result_id}/thumbnail?v=${encodeURIComponent(item.updated_at)}${media}`,
      alt: `annotated ${item.source.key}`, loading: "lazy", decoding: "async",
    });
    thumb.append(img);
    if (video) thumb.append(el("span", { className: "badge-video", text: `▶ ${item.video ? item.video.frames : ""} frames` }));
  } else if (video && item.status === "processing") {
    const progress = item.video || {};
    thumb.append(el("span", { className: "none", text: `processing: ${progress.segments_done || 0}/${progress.segments || "?"} segments` }));
  } else {
    thumb.append(el("span", { className: "none", text: item.status === "succeeded" ? "no annotated copy" : "no image" }));
  }
  const meta = el("div", { className: "meta" });
  meta.append(el("span", { className: "key", text: item.source.key, title: `s3://${item.source.bucket}/${item.source.key}` }));
  const row = el("span", { className: "row" });
  row.append(el("span", { className: `badge ${item.status}`, text: item.status }));
  if (item.status === "succeeded") {
    row.append(el("span", { text: `${item.detections} det · ${item.keypoints} kp` }));
  }
  if (item.media_type === "video") row.append(el("span", { className: "kind", text: "video" }));
  row.append(el("time", { datetime: item.updated_at, title: item.updated_at, text: relativeTime(item.updated_at) }));
  meta.append(row);
  if (item.reason) {
    meta.append(el("span", { className: "reason", text: `${item.reason.code}: ${item.reason.message}` }));
  }
  meta.append(el("span", { className: "row", text: item.model_id }));
  link.append(thumb, meta);
  return el("li", {}, link);
}

function appendItems(items) {
  const gallery = $("gallery");
  const fragment = document.createDocumentFragment();
  for (const item of items) {
    if (state.byId.has(item.result_id)) continue;
    state.byId.set(item.result_id, item);
    state.items.push(item);
    fragment.append(card(item));
  }
  gallery.append(fragment);
}

async function loadMore() {
  if (state.loading || state.done) return;
  state.loading = true;
  $("more").disabled = true;
  try {
    const page = await getJson(`/api/results?${query({ ...state.filters, limit: PAGE_SIZE, cursor: state.cursor })}`);
    appendItems(page.items);
    state.cursor = page.next_cursor;
    state.done = !page.next_cursor;
    const count = state.items.length;
    showMessage(count === 0 && state.done ? "No results match." : `${count} result${count === 1 ? "" : "s"}${state.done ? "" : " (more below)"}`);
    if (!document.body.dataset.firstPage) {
      document.body.dataset.firstPage = "1";
      performance.mark("s3kp:first-page");
    }
  } catch (error) {
    showMessage(`Could not load results: ${error.message}`, true);
  } finally {
    state.loading = false;
    $("more").disabled = false;
    $("more").hidden = state.done;
  }
  // A page the filters thinned out may not fill the screen: keep going while the sentinel shows.
  if (!state.done && sentinelVisible()) setTimeout(loadMore, 0);
}

function sentinelVisible() {
  const box = $("sentinel").getBoundingClientRect();
  return box.top < window.innerHeight + 400;
}

function resetGallery() {
  state.items = [];
  state.byId.clear();
  state.cursor = null;
  state.done = false;
  $("gallery").replaceChildren();
  document.body.dataset.firstPage = "";
  loadMore();
}

// New and reprocessed results: the first page again, merged on top.
async function poll() {
  if (document.hidden || state.loading) return;
  try {
    const page = await getJson(`/api/results?${query({ ...state.filters, limit: 20 })}`);
    const fresh = page.items.filter((item) => {
      const known = state.byId.get(item.result_id);
      return !known || known.updated_at !== item.updated_at;
    });
    if (fresh.length === 0) return;
    const gallery = $("gallery");
    for (const item of fresh.reverse()) {
      const known = state.byId.get(item.result_id);
      if (known) {
        gallery.querySelector(`[data-id="${item.result_id}"]`)?.parentElement.remove();
        state.items.splice(state.items.indexOf(known), 1);
      }
      state.byId.set(item.result_id, item);
      state.items.unshift(item);
      const node = card(item);
      node.firstChild.classList.add("fresh");
      gallery.prepend(node);
    }
    $("live").textContent = `${fresh.length} new at ${new Date().toLocaleTimeString()}`;
  } catch {
    // The next poll retries; loadMore reports errors where they matter.
  }
}

function readFilters() {
  const form = new FormData($("filters"));
  const filters = {};
  for (const name of ["status", "class", "prefix"]) {
    const value = String(form.get(name) || "").trim();
    if (value) filters[name] = value;
  }
  for (const name of ["since", "until"]) {
    const value = String(form.get(name) || "");
    if (value) filters[name] = new Date(value).toISOString(); // the input is local time
  }
  return filters;
}

// ------------------------------------------------------------------ detail
const COLORS = ["#ff4d4d", "#35c759", "#2d9cdb", "#ffb020", "#b15cff", "#00c2b8", "#ff6fb5", "#9ccc2f"];
function classColor(name) {
  let hash = 0;
  for (const ch of String(name)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return COLORS[hash % COLORS.length];
}

// The skeleton whose names agree with every keypoint's (slot, name): from s3kp_core, via /api/config.
function skeletonFor(keypoints) {
  if (!keypoints.length) return null;
  for (const skeleton of Object.values(state.config.skeletons)) {
    const names = skeleton.keypoint_names;
    if (keypoints.every((k) => names[k.class_id] === k.name)) return skeleton;
  }
  return null;
}

function drawOptions() {
  return {
    boxes: $("show-boxes").checked,
    keypoints: $("show-keypoints").checked,
    skeleton: $("show-skeleton").checked,
    labels: $("show-labels").checked,
    threshold: Number($("threshold").value),
  };
}

function draw() {
  const canvas = $("overlay");
  const image = $("detail-image");
  const result = state.detail;
  const width = image.clientWidth;
  const height = image.clientHeight;
  const ratio = window.devicePixelRatio || 1;
  canvas.style.left = `${image.offsetLeft}px`;
  canvas.style.top = `${image.offsetTop}px`;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  state.points = [];
  if (!result || !state.drawable || !result.image || !width) return;
  const sx = width / result.image.width;
  const sy = height / result.image.height;
  const options = drawOptions();
  const radius = Math.max(2.5, Math.min(6, width / 180));
  for (const prediction of result.predictions || []) {
    const color = classColor(prediction.class_name);
    const left = (prediction.x - prediction.width / 2) * sx;
    const top = (prediction.y - prediction.height / 2) * sy;
    ctx.lineWidth = 2;
    ctx.strokeStyle = color;
    if (options.boxes) ctx.strokeRect(left, top, prediction.width * sx, prediction.height * sy);
    if (options.labels) {
      const label = `${prediction.class_name} ${prediction.confidence.toFixed(2)}`;
      ctx.font = "12px system-ui, sans-serif";
      const textWidth = ctx.measureText(label).width + 8;
      const labelTop = top > 16 ? top - 16 : top;
      ctx.fillStyle = color;
      ctx.fillRect(left, labelTop, textWidth, 16);
      ctx.fillStyle = "#000";
      ctx.fillText(label, left + 4, labelTop + 12);
    }
    const shown = (prediction.keypoints || []).filter((k) => k.confidence >= options.threshold);
    const bySlot = new Map(shown.map((k) => [k.class_id, k]));
    const skeleton = skeletonFor(prediction.keypoints || []);
    if (options.skeleton && skeleton) {
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      for (const [a, b] of skeleton.edges) {
        const from = bySlot.get(a);
        const to = bySlot.get(b);
        if (!from || !to) continue;
        ctx.moveTo(from.x * sx, from.y * sy);
        ctx.lineTo(to.x * sx, to.y * sy);
      }
      ctx.stroke();
    }
    for (const keypoint of shown) {
      const x = keypoint.x * sx;
      const y = keypoint.y * sy;
      state.points.push({ x, y, keypoint, prediction });
      if (!options.keypoints) continue;
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, Math.PI * 2);
      ctx.fillStyle = "#ffcf5c";
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#000";
      ctx.stroke();
    }
  }
  canvas.dataset.drawn = JSON.stringify(options);
}

function showTooltip(event) {
  const tooltip = $("tooltip");
  const canvas = $("overlay");
  const box = canvas.getBoundingClientRect();
  const x = event.clientX - box.left;
  const y = event.clientY - box.top;
  let best = null;
  let bestDistance = 12;
  for (const point of state.points || []) {
    const distance = Math.hypot(point.x - x, point.y - y);
    if (distance < bestDistance) { best = point; bestDistance = distance; }
  }
  if (!best || !drawOptions().keypoints) { tooltip.hidden = true; return; }
  tooltip.textContent = `${best.keypoint.name} ${best.keypoint.confidence.toFixed(2)} · ${best.prediction.class_name}`;
  tooltip.style.left = `${best.x + canvas.offsetLeft}px`;
  tooltip.style.top = `${best.y + canvas.offsetTop}px`;
  tooltip.hidden = false;
}

function fact(list, name, value) {
  list.append(el("dt", { text: name }), el("dd", { text: value }));
}

async function openDetail(id) {
  const dialog = $("detail");
  state.openId = id;
  state.detail = null;
  state.drawable = false;
  $("detail-title").textContent = state.byId.get(id)?.source.key || id;
  $("raw").textContent = "loading…";
  $("facts").replaceChildren();
  $("image-note").textContent = "";
  $("source-uri").textContent = "";
  $("annotated-link").hidden = true;
  $("source-link").hidden = true;
  const image = $("detail-image");
  image.removeAttribute("src");
  image.alt = "";
  image.hidden = true; // until an image is chosen: no broken-image icon
  delete image.dataset.loaded;
  hideVideo();
  draw();
  if (!dialog.open) dialog.showModal();
  let result;
  try {
    result = await getJson(`/api/results/${id}`);
  } catch (error) {
    $("raw").textContent = "";
    $("image-note").textContent = `Could not load the result: ${error.message}`;
    return;
  }
  if (state.openId !== id) return;
  state.detail = result;
  $("detail-title").textContent = result.source.key;
  $("raw").textContent = JSON.stringify(result, null, 2);
  const facts = $("facts");
  fact(facts, "status", result.status + (result.reason ? ` (${result.reason.code})` : ""));
  if (result.reason) fact(facts, "reason", result.reason.message);
  fact(facts, "model", result.model_id);
  if (result.image) fact(facts, "size", `${result.image.width} × ${result.image.height}`);
  if (result.video) {
    const video = result.video;
    fact(facts, "video", `${video.width} × ${video.height}, ${video.duration_seconds} s`);
    fact(facts, "frames", `${video.frames} at ${video.fps_sampled} per second`);
    if (result.status === "processing") fact(facts, "segments", `${video.segments_done} of ${video.segments} done`);
  }
  fact(facts, "detections", String(result.detections));
  fact(facts, "keypoints", String(result.keypoints));
  const counts = Object.entries(result.counts || {}).map(([name, n]) => `${name} ${n}`).join(", ");
  if (counts) fact(facts, "classes", counts);
  fact(facts, "updated", new Date(result.updated_at).toLocaleString());
  $("source-uri").textContent = `s3://${result.source.bucket}/${result.source.key}`;
  const annotatedLink = $("annotated-link");
  annotatedLink.hidden = !result.links.annotated;
  annotatedLink.href = `/api/results/${id}/annotated`;
  const sourceLink = $("source-link");
  sourceLink.hidden = !state.config.source_images || result.status !== "succeeded";
  sourceLink.href = `/api/results/${id}/source?v=${encodeURIComponent(result.updated_at)}`;
  if (result.media_type === "video") {
    $("source-link").hidden = true;
    annotatedLink.textContent = "annotated video";
    if (result.status === "succeeded") showVideo(result);
    else $("image-note").textContent = result.status === "processing"
      ? "Processing: the video is shown once its last segment is done."
      : "No video: it was not processed.";
    return;
  }
  annotatedLink.textContent = "annotated copy";
  if (result.status === "succeeded") showImage(result);
  else $("image-note").textContent = "No image: the object was not processed.";
}

// ------------------------------------------------------------------ videos
// The annotated MP4 (its drawing is the ingest side's), and a scrubber over its sampled frames: frame n is
// shown at n / fps seconds; the side panel lists that frame's detections, keypoints and confidences.
function hideVideo() {
  const video = $("detail-video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  video.hidden = true;
  $("scrubber").hidden = true;
  $("frame-detections").replaceChildren();
  state.frames = new Map();
}

function showVideo(result) {
  const video = $("detail-video");
  const frames = result.video.frames;
  const slider = $("frame");
  slider.max = String(Math.max(0, frames - 1));
  slider.value = "0";
  $("scrubber").hidden = false;
  video.hidden = false;
  video.src = `/api/results/${result.result_id}/video`;
  $("image-note").textContent = `${frames} sampled frames: scrub to see each one's keypoints.`;
  showFrame(0);
}

function currentFrame() {
  const result = state.detail;
  const video = $("detail-video");
  const frames = result.video.frames;
  return Math.max(0, Math.min(frames - 1, Math.floor(video.currentTime * result.video.fps_sampled + 1e-6)));
}

function seekFrame(n) {
  const result = state.detail;
  if (!result || !result.video) return;
  const frames = result.video.frames;
  const frame = Math.max(0, Math.min(frames - 1, n));
  const video = $("detail-video");
  video.pause();
  // The middle of the frame's interval: no rounding lands on its neighbour.
  video.currentTime = (frame + 0.5) / result.video.fps_sampled;
  $("frame").value = String(frame);
  showFrame(frame);
}

async function framesPage(id, first) {
  if (!state.frames.has(first)) {
    state.frames.set(first, getJson(`/api/results/${id}/frames?${query({ offset: first, limit: FRAMES_PAGE })}`));
  }
  return state.frames.get(first);
}

async function showFrame(n) {
  const result = state.detail;
  const id = result.result_id;
  const fps = result.video.fps_sampled;
  $("frame-label").textContent = `${n + 1} / ${result.video.frames} · ${(n / fps).toFixed(2)} s`;
  const list = $("frame-detections");
  list.dataset.frame = String(n);
  let page;
  try {
    page = await framesPage(id, Math.floor(n / FRAMES_PAGE) * FRAMES_PAGE);
  } catch (error) {
    list.replaceChildren(el("li", { text: `Could not load the frame: ${error.message}` }));
    return;
  }
  if (state.openId !== id || list.dataset.frame !== String(n)) return; // moved on meanwhile
  const frame = page.items.find((item) => item.frame === n);
  const predictions = frame ? frame.predictions : [];
  const threshold = Number($("threshold").value);
  const items = predictions.map((prediction) => {
    const keypoints = (prediction.keypoints || [])
      .filter((k) => k.confidence >= threshold)
      .map((k) => `${k.name} ${k.confidence.toFixed(2)}`)
      .join(", ");
    const entry = el("li", {}, el("strong", { text: `${prediction.class_name} ${prediction.confidence.toFixed(2)}` }));
    if (keypoints) entry.append(" ", el("span", { className: "keypoints", text: keypoints }));
    return entry;
  });
  list.replaceChildren(...(items.length ? items : [el("li", { text: "no detection in this frame" })]));
  list.dataset.shown = String(n);
}

// The clean source image, so the drawing can be toggled; the annotated copy when it cannot be read.
function showImage(result) {
  const image = $("detail-image");
  const version = encodeURIComponent(result.updated_at);
  const annotated = result.links.annotated ? `/api/results/${result.result_id}/annotated` : null;
  const useAnnotated = () => {
    state.drawable = false;
    if (annotated) {
      image.src = annotated;
      $("image-note").textContent = "Showing the annotated copy: the source image cannot be read here.";
    }
    draw();
  };
  image.onload = () => {
    state.drawable = image.src.includes("/source");
    image.dataset.loaded = state.drawable ? "source" : "annotated";
    draw();
  };
  image.onerror = useAnnotated;
  image.alt = `${result.source.key}`;
  image.hidden = false;
  if (state.config.source_images) image.src = `/api/results/${result.result_id}/source?v=${version}`;
  else useAnnotated();
}

function closeDetail() {
  if (location.hash.startsWith("#/r/")) history.replaceState(null, "", location.pathname + location.search);
  state.openId = null;
  hideVideo();
  const dialog = $("detail");
  if (dialog.open) dialog.close();
}

function step(offset) {
  const index = state.items.findIndex((item) => item.result_id === state.openId);
  const next = state.items[index + offset];
  if (next) location.hash = `#/r/${next.result_id}`;
  else if (offset > 0 && !state.done) loadMore();
}

function route() {
  const match = location.hash.match(/^#\/r\/([0-9a-f]{32})$/);
  if (match) openDetail(match[1]);
  else if ($("detail").open) closeDetail();
}

// ------------------------------------------------------------------ wiring
async function start() {
  try {
    state.config = await getJson("/api/config");
    $("api").textContent = `API: ${state.config.api}`;
  } catch (error) {
    showMessage(`The viewer's server does not answer: ${error.message}`, true);
    return;
  }
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.filters = readFilters();
    resetGallery();
  });
  $("filters").addEventListener("reset", () => {
    state.filters = {};
    setTimeout(resetGallery, 0);
  });
  $("more").addEventListener("click", loadMore);
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadMore();
  }, { rootMargin: "400px" }).observe($("sentinel"));

  const dialog = $("detail");
  dialog.addEventListener("close", () => { if (state.openId) closeDetail(); });
  $("close").addEventListener("click", closeDetail);
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  for (const id of ["show-boxes", "show-keypoints", "show-skeleton", "show-labels"]) $(id).addEventListener("change", draw);
  $("threshold").addEventListener("input", () => {
    $("threshold-value").textContent = Number($("threshold").value).toFixed(2);
    draw();
    if (state.detail && state.detail.video && !$("scrubber").hidden) showFrame(Number($("frame").value));
  });
  $("frame").addEventListener("input", () => seekFrame(Number($("frame").value)));
  $("detail-video").addEventListener("timeupdate", () => {
    if (!state.detail || !state.detail.video) return;
    const n = currentFrame();
    if ($("frame").value !== String(n)) {
      $("frame").value = String(n);
      showFrame(n);
    }
  });
  $("overlay").addEventListener("mousemove", showTooltip);
  $("overlay").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  new ResizeObserver(() => { if (dialog.open) draw(); }).observe($("detail-image"));
  dialog.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.type !== "checkbox") return;
    const toggles = { b: "show-boxes", k: "show-keypoints", s: "show-skeleton", l: "show-labels" };
    const video = state.detail && state.detail.video && state.detail.status === "succeeded";
    if (video && (event.key === "," || event.key === ".")) seekFrame(Number($("frame").value) + (event.key === "," ? -1 : 1));
    else if (event.key === "ArrowLeft") step(-1);
    else if (event.key === "ArrowRight") step(1);
    else if (toggles[event.key]) {
      const box = $(toggles[event.key]);
      box.checked = !box.checked;
      draw();
    } else return;
    event.preventDefault();
  });
  window.addEventListener("hashchange", route);
  loadMore();
  route();
  setInterval(poll, state.config.poll_seconds * 1000);
}

start();
