// The quiz page's one script (DESIGN §6a). It calls the ingest API, keeps the access key, the attempt and
// every answer on this device as they are chosen, and never loses an entry: a submission that meets a
// network error, 408, 429 or 5xx is sent again by itself with backoff (capped at 5 s; the server answers a
// repeat with the original receipt), waits while the device is offline and goes as soon as it is back.
// The countdown runs on the server's clock (its Date header and started_at against the device's, once).
// No framework, no build step; the pages' words and structure come from the server.
"use strict";

const body = document.body;
const NS = body.dataset.store || "cchc:";
const RESULTS = body.dataset.results || "";
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);
const BACKOFF_CAP_MS = 5000;
const $ = (selector, root) => (root || document).querySelector(selector);
const pad = (n) => String(n).padStart(2, "0");

// -- this device's storage (per contest; attempts, pending submissions and receipts per participant) -------
const store = {
  get(name) { try { return JSON.parse(localStorage.getItem(NS + name)); } catch (e) { return null; } },
  set(name, value) { try { localStorage.setItem(NS + name, JSON.stringify(value)); } catch (e) { /* full */ } },
  drop(name) { try { localStorage.removeItem(NS + name); } catch (e) { /* blocked */ } },
};
const participantOf = (key) => (key || "").split(".")[0];

function newIdempotencyKey() {  // 24 URL-safe characters (works outside secure contexts too)
  const bytes = new Uint8Array(18);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
}

// -- the server's clock -----------------------------------------------------------------------------
let clockOffset = 0;  // server time − device time (ms)
const serverNow = () => Date.now() + clockOffset;

function offsetOf(answer, serverMs) {
  // `serverMs`: a time the server stamped while answering (started_at), else the Date header (whole
  // seconds: +500 ms is its middle); either against the middle of the round trip on the device's clock.
  const middle = (answer.sentAt + answer.receivedAt) / 2;
  const date = Date.parse(answer.response.headers.get("Date") || "");
  const byDate = Number.isNaN(date) ? null : date + 500 - middle;
  if (serverMs !== undefined && !Number.isNaN(serverMs)) {
    const byStamp = serverMs - middle;
    if (byDate === null || Math.abs(byStamp - byDate) < 1500) return byStamp;  // a replayed start is older
  }
  return byDate === null ? 0 : byDate;
}

// -- the API ----------------------------------------------------------------------------------------------
async function call(method, path, options) {
  const o = options || {};
  const headers = { Accept: "application/json" };
  if (o.body !== undefined) headers["Content-Type"] = "application/json";
  if (o.key) headers.Authorization = "Bearer " + o.key;
  if (o.idempotency) headers["Idempotency-Key"] = o.idempotency;
  const sentAt = Date.now();
  const response = await fetch(path, { method, headers, cache: o.cache || "no-store", credentials: "omit",
                                       body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  const receivedAt = Date.now();
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  return { status: response.status, data, response, sentAt, receivedAt };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function online(ms) {  // resolves when the connection returns (the `online` event), or after `ms`
  return new Promise((resolve) => {
    const done = () => { window.removeEventListener("online", done); clearTimeout(timer); resolve(); };
    const timer = setTimeout(done, ms);
    window.addEventListener("online", done);
  });
}

// Send until an answer that is not transient (or `tries` run out: null); `say(state, seconds, tries)`
// tells the person what is happening.
async function persist(method, path, options, say, tries) {
  for (let n = 1; ; n++) {
    if (navigator.onLine === false) {
      say("offline", 0, n);
      await online(BACKOFF_CAP_MS);
      continue;
    }
    let answer = null;
    try { answer = await call(method, path, options); } catch (e) { answer = null; }
    if (answer && !RETRYABLE.has(answer.status)) return answer;
    if (tries && n >= tries) return answer;
    const retryAfter = answer ? Number(answer.response.headers.get("Retry-After")) * 1000 || 0 : 0;
    const wait = Math.min(BACKOFF_CAP_MS, Math.max(retryAfter, 500 * 2 ** (n - 1)) * (0.8 + Math.random() * 0.4));
    if (navigator.onLine === false) continue;
    say(answer ? "busy" : "network", Math.ceil(wait / 1000), n);
    await Promise.race([sleep(wait), online(wait)]);
  }
}

let contestPromise = null;
function contestInfo() {  // GET /v1/contest through the browser's cache (a 304 while nothing changed)
  if (!contestPromise) {
    contestPromise = call("GET", "/v1/contest", { cache: "no-cache" }).then((answer) => {
      if (answer.status !== 200) throw new Error(String(answer.status));
      clockOffset = offsetOf(answer);
      return answer.data;
    });
  }
  return contestPromise;
}

// -- words ------------------------------------------------------------------------------------------------
function when(iso) {  // "2022-08-22T08:05:09.120+07:00" → "08:05:09 ngày 22/08/2022" (the contest's time)
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})/.exec(iso || "");
  return m ? m[4] + ":" + m[5] + ":" + m[6] + " ngày " + m[3] + "/" + m[2] + "/" + m[1] : iso;
}
function day(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
  return m ? m[3] + "/" + m[2] + "/" + m[1] : iso;
}
function duration(ms) {
  const s = Math.floor(ms / 1000), tenths = Math.floor(ms % 1000 / 100);
  return (s >= 60 ? Math.floor(s / 60) + " phút " : "") + (s % 60) + "," + tenths + " giây";
}
function clock(ms) {  // mm:ss, h:mm:ss from an hour
  const s = Math.max(0, Math.ceil(ms / 1000)), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
  return (h ? h + ":" + pad(m) : pad(m)) + ":" + pad(s % 60);
}
function countdownText(ms) {
  if (ms <= 0) return "(đã đến giờ)";
  const s = Math.floor(ms / 1000), d = Math.floor(s / 86400);
  return "(còn " + (d ? d + " ngày " : "") + pad(Math.floor(s % 86400 / 3600)) + ":" + pad(Math.floor(s % 3600 / 60)) +
    ":" + pad(s % 60) + ")";
}
function say(element, text) { if (element) element.textContent = text; }
function retrying(state, seconds, n) {
  if (state === "offline") return "Mất kết nối mạng. Bài đã lưu trên máy; trang sẽ tự gửi ngay khi có mạng lại.";
  const why = state === "busy" ? "Máy chủ đang bận" : "Chưa gửi được (lỗi mạng)";
  return why + ". Tự gửi lại sau " + seconds + " giây (lần thử " + (n + 1) + ")…";
}
function errorOf(answer) { return (answer && answer.data && answer.data.error) || {}; }

function dl(list, rows) {
  list.textContent = "";
  for (const [term, value] of rows) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = term;
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = value;
    list.append(dt, dd);
  }
}
function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}
function standingUrl(period, participant) {
  return RESULTS + "/periods/" + period + "/participants/" + encodeURIComponent(participant);
}
function focus(element) {
  if (!element) return;
  if (!element.hasAttribute("tabindex")) element.setAttribute("tabindex", "-1");
  element.focus();
}
function show(element, visible) { if (element) element.hidden = !visible; }

// -- errors, one way everywhere: a summary at the top linking to each field, the message next to it ----
function showErrors(form, summary, errors) {
  for (const field of form.querySelectorAll("[data-field]")) {
    field.classList.remove("field-error");
    const message = field.querySelector(".error-message");
    if (message) { message.hidden = true; message.textContent = ""; }
    for (const input of field.querySelectorAll("input")) {
      input.removeAttribute("aria-invalid");
      const described = (input.getAttribute("aria-describedby") || "").split(" ")
        .filter((id) => id && !id.endsWith("-error"));
      if (described.length) input.setAttribute("aria-describedby", described.join(" "));
      else input.removeAttribute("aria-describedby");
    }
  }
  const list = $("ul", summary);
  list.textContent = "";
  summary.hidden = errors.length === 0;
  for (const error of errors) {
    const field = error.name && form.querySelector('[data-field="' + error.name + '"]');
    const item = document.createElement("li");
    if (field) {
      field.classList.add("field-error");
      const message = field.querySelector(".error-message");
      const hidden = document.createElement("span");
      hidden.className = "sr-only";
      hidden.textContent = "Lỗi: ";
      message.append(hidden, error.text);
      message.hidden = false;
      const inputs = field.querySelectorAll("input:not([type=hidden])");
      for (const input of inputs) {
        input.setAttribute("aria-invalid", "true");
        if (input.closest("fieldset")) continue;  // a radio group's legend and message describe it
        const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
        input.setAttribute("aria-describedby", [message.id, ...described].join(" "));
      }
      const target = inputs[0];
      const a = link("#" + target.id, error.text);
      a.addEventListener("click", (event) => { event.preventDefault(); target.focus(); });
      item.appendChild(a);
    } else {
      item.textContent = error.text;
    }
    list.appendChild(item);
  }
  if (errors.length) focus(summary);
}

// -- what registration and recovery check before sending, in the person's words ---------------------------
function isoDate(raw) {  // "17/5/1990" → "1990-05-17"; "" empty, null unreadable, "invalid" not a real day
  const text = raw.trim();
  if (!text) return "";
  const m = /^(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})$/.exec(text);
  if (!m) return null;
  const d = Number(m[1]), mo = Number(m[2]), y = Number(m[3]);
  const date = new Date(Date.UTC(y, mo - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return "invalid";
  return y + "-" + pad(mo) + "-" + pad(d);
}
function ageOn(birth, dayIso) {
  const [by, bm, bd] = birth.split("-").map(Number), [y, m, d] = dayIso.split("-").map(Number);
  return y - by - ((m < bm || (m === bm && d < bd)) ? 1 : 0);
}
const MIN_AGE = Number(body.dataset.minAge || "0");
const FIRST_DAY = body.dataset.firstDay || "";
const AGE_TEXT = "Người dự thi phải đủ " + MIN_AGE + " tuổi vào ngày bắt đầu tuần thi đầu tiên (" + day(FIRST_DAY) + ").";
const TEXTS = {
  full_name: "Họ và tên dài từ 2 đến 100 ký tự, chỉ gồm chữ cái, dấu cách và các dấu . - '",
  id_number: "Số CCCD gồm đúng 12 chữ số.",
  id_structure: "Số CCCD không khớp với ngày sinh: 3 số đầu là mã tỉnh, số thứ 4 chỉ thế kỷ sinh, số thứ 5 và 6 là hai số cuối của năm sinh.",
  id_taken: "Số CCCD này đã được dùng để đăng ký. Mỗi người chỉ có một tài khoản; nếu mất mã truy cập, hãy lấy lại mã ở trang Đăng nhập.",
  phone: "Số điện thoại gồm 10 chữ số, bắt đầu bằng 0 (hoặc +84).",
  phone_taken: "Số điện thoại này đã được dùng để đăng ký. Mỗi người chỉ có một tài khoản; nếu mất mã truy cập, hãy lấy lại mã ở trang Đăng nhập.",
  excluded: "Người có số CCCD này thuộc danh sách không được dự thi (Ban Tổ chức, người ra đề, cán bộ kỹ thuật).",
  birth_date: "Nhập ngày sinh theo dạng ngày/tháng/năm, ví dụ 17/05/1990.",
  birth_invalid: "Ngày sinh không có thật; kiểm tra lại ngày và tháng.",
  group: "Chọn đối tượng dự thi.",
  unit_code: "Chọn cơ quan, đơn vị trong danh sách gợi ý (gõ vài chữ của tên để thấy danh sách).",
  consent: "Đánh dấu ô đồng ý để đăng ký: cuộc thi chỉ được xử lý dữ liệu cá nhân của bạn khi bạn đồng ý.",
};

function checkIdentity(values, errors) {
  const id = values.id_number.replace(/[\s.-]/g, "");
  if (!id) errors.push({ name: "id_number", text: "Nhập số CCCD." });
  else if (!/^\d{12}$/.test(id)) errors.push({ name: "id_number", text: TEXTS.id_number });
  const phone = values.phone.replace(/[\s.\-()]/g, "");
  if (!phone) errors.push({ name: "phone", text: "Nhập số điện thoại." });
  else if (!/^(0\d{9}|\+?84(0?)\d{9})$/.test(phone)) errors.push({ name: "phone", text: TEXTS.phone });
  const birth = isoDate(values.birth_date);
  if (birth === "") errors.push({ name: "birth_date", text: "Nhập ngày sinh." });
  else if (birth === null) errors.push({ name: "birth_date", text: TEXTS.birth_date });
  else if (birth === "invalid") errors.push({ name: "birth_date", text: TEXTS.birth_invalid });
  return { id_number: id, phone: values.phone.trim(), birth_date: birth };
}

function apiErrors(answer) {  // the API's refusal, next to the field it names
  const error = errorOf(answer), message = error.message || "";
  if (!answer) return [{ text: "Không kết nối được máy chủ. Kiểm tra mạng rồi bấm lại nút: yêu cầu sẽ không bị tính hai lần." }];
  if (error.code === "duplicate_identity") {
    return message.startsWith("phone") ? [{ name: "phone", text: TEXTS.phone_taken }] : [{ name: "id_number", text: TEXTS.id_taken }];
  }
  if (error.code === "excluded") return [{ name: "id_number", text: TEXTS.excluded }];
  if (error.code === "rate_limited") {
    const seconds = Number(answer.response.headers.get("Retry-After")) || 60;
    return [{ text: "Có quá nhiều lượt gửi; hãy thử lại sau " + Math.ceil(seconds / 60) + " phút." }];
  }
  if (error.code === "invalid") {
    const named = /^([a-z_]+)\b/.exec(message) || /\$\.([a-z_]+)/.exec(message);
    const name = named ? named[1] : "";
    if (name === "id_number") return [{ name, text: /century|province/.test(message) ? TEXTS.id_structure : TEXTS.id_number }];
    if (name === "birth_date") return [{ name, text: /at least|future/.test(message) ? AGE_TEXT : TEXTS.birth_date }];
    if (name in TEXTS) return [{ name, text: TEXTS[name] }];
    return [{ text: "Thông tin chưa hợp lệ: " + message }];
  }
  return [{ text: "Chưa gửi được (mã lỗi " + answer.status + "). Hãy thử lại sau ít phút." }];
}

// -- the access key, shown once ---------------------------------------------------------------------------
function showKey(panel, key) {
  store.set("key", key);
  $("[data-key-text]", panel).textContent = key;
  show($("[data-step=form]"), false);
  show(panel, true);
  focus($("h2", panel));
  const status = $("[data-key-status]", panel);
  $("[data-copy-key]", panel).addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(key);
    } catch (e) {  // no clipboard API (an insecure origin): select it and copy the old way
      const range = document.createRange();
      range.selectNodeContents($("[data-key-text]", panel));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
    }
    say(status, "Đã sao chép mã truy cập. Hãy dán nó vào nơi an toàn (sổ tay, tin nhắn gửi chính mình).");
  });
  $("[data-download-key]", panel).addEventListener("click", () => {
    const text = "Mã truy cập cuộc thi: " + document.title.replace(/^.*? — /, "") + "\n\n" + key + "\n\n" +
      "Trang thi: " + location.origin + "/\nGiữ kín mã này: ai có mã đều làm bài được thay bạn.\n";
    const a = link(URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" })), "");
    a.download = "ma-truy-cap.txt";
    document.body.appendChild(a);
    a.click();
    a.remove();
    say(status, "Đã tải về tệp ma-truy-cap.txt.");
  });
}

// -- the unit field: a combobox that searches the unit tree by name, accents or not -----------------------
function fold(text) {
  return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/[đĐ]/g, "d").toLowerCase()
    .replace(/\s+/g, " ").trim();
}

function unitField(form) {
  const input = $("#unit", form), list = $("#unit-list", form), count = $("#unit-count", form);
  const state = { code: "", entries: [], active: -1, shown: [] };
  contestInfo().then((info) => {
    const names = new Map(info.units.map((u) => [u.code, u.name]));
    state.entries = info.units.map((u) => {
      const parent = u.parent_code ? names.get(u.parent_code) || "" : "";
      return { code: u.code, name: u.name, parent, folded: fold(u.name + " " + parent), short: fold(u.name) };
    });
  }).catch(() => {});
  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    state.active = -1;
  };
  const mark = (index) => {
    state.active = index;
    list.querySelectorAll("li").forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    const option = list.children[index];
    if (option) {
      input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    }
  };
  const choose = (entry) => {
    state.code = entry.code;
    input.value = entry.name;
    close();
  };
  const render = () => {
    const words = fold(input.value).split(" ").filter(Boolean);
    list.textContent = "";
    if (!words.length) { close(); say(count, ""); return; }
    const found = state.entries.filter((e) => words.every((w) => e.folded.includes(w)));
    const query = words.join(" ");
    found.sort((a, b) => Number(!a.short.startsWith(query)) - Number(!b.short.startsWith(query)));
    state.shown = found.slice(0, 30);
    state.shown.forEach((entry, i) => {
      const li = document.createElement("li");
      li.id = "unit-option-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.textContent = entry.name;
      if (entry.parent) {
        const small = document.createElement("small");
        small.textContent = entry.parent;
        li.appendChild(small);
      }
      li.addEventListener("mousedown", (event) => event.preventDefault());  // keep the focus in the field
      li.addEventListener("click", () => choose(entry));
      list.appendChild(li);
    });
    list.hidden = state.shown.length === 0;
    input.setAttribute("aria-expanded", String(state.shown.length > 0));
    state.active = -1;
    say(count, found.length ? found.length + " đơn vị phù hợp" + (found.length > 30 ? ", hiện 30 đơn vị đầu" : "") +
      "; dùng phím mũi tên để chọn." : "Không có đơn vị nào phù hợp.");
  };
  input.addEventListener("input", () => { state.code = ""; render(); });
  input.addEventListener("keydown", (event) => {
    const open = !list.hidden && state.shown.length;
    if (event.key === "ArrowDown") {
      event.preventDefault();
      if (!open) render();
      if (state.shown.length) mark(Math.min(state.active + 1, state.shown.length - 1));
    } else if (event.key === "ArrowUp" && open) {
      event.preventDefault();
      mark(Math.max(state.active - 1, 0));
    } else if (event.key === "Enter" && open && state.active >= 0) {
      event.preventDefault();
      choose(state.shown[state.active]);
    } else if (event.key === "Escape" && open) {
      event.preventDefault();
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
  return () => {  // the chosen unit's code ("" when none): a name typed in full counts as chosen
    if (state.code) return state.code;
    const typed = fold(input.value);
    const exact = state.entries.filter((e) => e.short === typed);
    return exact.length === 1 ? exact[0].code : "";
  };
}

// -- /dang-ky -------------------------------------------------------------------------------------------
function registerView() {
  const form = $("#register"), summary = $("#register-errors"), status = $("[data-form-status]", form);
  const unitCode = unitField(form);
  const unitBox = $("[data-unit-field]", form);
  for (const radio of form.querySelectorAll("input[name=group]")) {
    radio.addEventListener("change", () => show(unitBox, radio.dataset.needsUnit === "yes"));
  }
  let last = null;  // the body last sent and its Idempotency-Key: the same body again is the same request
  let busy = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    const errors = [];
    const value = (name) => (form.elements[name] ? form.elements[name].value : "");
    const name = value("full_name").trim().replace(/\s+/g, " ");
    if (!name) errors.push({ name: "full_name", text: "Nhập họ và tên." });
    else if (name.length < 2 || name.length > 100 || !/^[\p{L}\p{M} .'-]+$/u.test(name)) {
      errors.push({ name: "full_name", text: TEXTS.full_name });
    }
    const identity = checkIdentity({ id_number: value("id_number"), phone: value("phone"), birth_date: value("birth_date") }, errors);
    if (identity.birth_date && identity.birth_date !== "invalid" && FIRST_DAY && ageOn(identity.birth_date, FIRST_DAY) < MIN_AGE) {
      errors.push({ name: "birth_date", text: AGE_TEXT });
    }
    const group = form.querySelector("input[name=group]:checked");
    if (!group) errors.push({ name: "group", text: TEXTS.group });
    const needsUnit = group && group.dataset.needsUnit === "yes";
    const unit = needsUnit ? unitCode() : "";
    if (needsUnit && !unit) errors.push({ name: "unit_code", text: TEXTS.unit_code });
    const consent = form.elements.consent;
    if (consent && !consent.checked) errors.push({ name: "consent", text: TEXTS.consent });
    showErrors(form, summary, errors);
    if (errors.length) return;
    const payload = { full_name: name, id_number: identity.id_number, phone: identity.phone,
                      birth_date: identity.birth_date, group: group.value, unit_code: unit || null };
    if (consent) payload.consent = { version: consent.value };
    const text = JSON.stringify(payload);
    if (!last || last.text !== text) last = { text, key: newIdempotencyKey() };
    busy = true;
    const button = $("button[type=submit]", form);
    button.disabled = true;
    say(status, "Đang gửi…");
    const answer = await persist("POST", "/v1/participants", { body: payload, idempotency: last.key },
                                 (state, seconds, n) => say(status, retrying(state, seconds, n)), 4);
    busy = false;
    button.disabled = false;
    say(status, "");
    if (answer && answer.status === 201) {
      showKey($("#new-key"), answer.data.access_key);
      return;
    }
    showErrors(form, summary, apiErrors(answer));
  });
}

// -- /dang-nhap -------------------------------------------------------------------------------------------
function signinView() {
  const form = $("#signin"), summary = $("#signin-errors"), status = $("[data-form-status]", form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = form.elements.access_key.value.replace(/\s+/g, "");
    if (!key) return showErrors(form, summary, [{ name: "access_key", text: "Nhập mã truy cập." }]);
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(key)) {
      return showErrors(form, summary, [{ name: "access_key", text: "Mã truy cập gồm chữ, số, dấu - và _, có một dấu chấm ở giữa; hãy dán đúng mã đã nhận." }]);
    }
    showErrors(form, summary, []);
    say(status, "Đang kiểm tra mã…");
    const answer = await persist("GET", "/v1/participants/me", { key }, (state, seconds, n) => say(status, retrying(state, seconds, n)), 4);
    say(status, "");
    if (answer && answer.status === 200) {
      store.set("key", key);
      say(status, "Đã đăng nhập. Đang chuyển sang trang làm bài…");
      location.assign("/thi");
      return;
    }
    if (answer && answer.status === 401) {
      return showErrors(form, summary, [{ name: "access_key", text: "Mã truy cập không đúng, hoặc đã được thay bằng mã mới khi lấy lại mã." }]);
    }
    showErrors(form, summary, apiErrors(answer));
  });
  const recover = $("#recover"), recoverSummary = $("#recover-errors"), recoverStatus = $("[data-form-status]", recover);
  let last = null;
  recover.addEventListener("submit", async (event) => {
    event.preventDefault();
    const errors = [];
    const identity = checkIdentity({ id_number: recover.elements.id_number.value, phone: recover.elements.phone.value,
                                     birth_date: recover.elements.birth_date.value }, errors);
    showErrors(recover, recoverSummary, errors);
    if (errors.length) return;
    const text = JSON.stringify(identity);
    if (!last || last.text !== text) last = { text, key: newIdempotencyKey() };
    say(recoverStatus, "Đang gửi…");
    const answer = await persist("POST", "/v1/participants/access-key", { body: identity, idempotency: last.key },
                                 (state, seconds, n) => say(recoverStatus, retrying(state, seconds, n)), 4);
    say(recoverStatus, "");
    if (answer && answer.status === 200) {
      for (const name of ["attempt:", "receipt:"]) store.drop(name + participantOf(store.get("key") || ""));
      showKey($("#recovered-key"), answer.data.access_key);
      return;
    }
    if (answer && answer.status === 401) {
      return showErrors(recover, recoverSummary, [{ text: "Không có người dự thi nào có đúng số CCCD, số điện thoại và ngày sinh này. Kiểm tra lại cả ba." }]);
    }
    if (answer && answer.status === 429) {
      const minutes = Math.ceil((Number(answer.response.headers.get("Retry-After")) || 3600) / 60);
      return showErrors(recover, recoverSummary, [{ text: "Đã thử lấy lại mã quá nhiều lần; hãy thử lại sau " + minutes + " phút." }]);
    }
    showErrors(recover, recoverSummary, apiErrors(answer));
  });
}

// -- /thi -------------------------------------------------------------------------------------------------
const START_REFUSALS = {
  attempt_limit: "Bạn đã dùng hết " + (body.dataset.attempts || "") + " lượt thi của tuần này. Hẹn gặp lại tuần sau!",
  period_not_open: "Hiện không có tuần thi nào đang mở.",
  disqualified: "Tài khoản này đã bị Ban Tổ chức loại khỏi cuộc thi; hãy liên hệ đường dây nóng của cuộc thi nếu cần.",
};
const SUBMIT_REFUSALS = {
  deadline_passed: "Bài đến máy chủ sau thời hạn làm bài (kể cả thời gian gia hạn) nên không được nhận.",
  period_closed: "Tuần thi đã kết thúc trước khi bài đến máy chủ nên bài không được tính.",
  invalid_token: "Phiên làm bài này không hợp lệ (có thể đã quá cũ). Hãy bắt đầu một lượt mới.",
};

function attemptView() {
  const key = store.get("key");
  const startSection = $("#start"), startStatus = $("[data-start-status]");
  if (!key) {
    show(startSection, false);
    show($("#need-signin"), true);
    return;
  }
  const participant = participantOf(key);
  const names = { attempt: "attempt:" + participant, pending: "pending:" + participant,
                  receipt: "receipt:" + participant, starting: "starting:" + participant };
  const form = $("#attempt"), summary = $("#attempt-errors"), timer = $("#timer"), timerAlert = $("#timer-alert");
  const sending = { now: false };
  let record = null;
  let ticking = 0;

  function signedOut() {
    store.drop("key");
    show(startSection, false);
    show(form, false);
    const box = $("#need-signin");
    say($("h2", box), "Mã truy cập trên máy này không còn hiệu lực (đã được thay bằng mã mới?)");
    show(box, true);
    focus($("h2", box));
  }

  function receiptRows(receipt) {
    return [["Mã bài nộp", receipt.submission_id], ["Máy chủ nhận lúc", when(receipt.received_at)],
            ["Thời gian làm bài (máy chủ đo)", duration(receipt.duration_ms)]];
  }

  function showReceipt(receipt) {
    for (const section of [startSection, form, $("#sending"), $("#refused")]) show(section, false);
    const section = $("#receipt");
    dl($("[data-receipt-list]", section), receiptRows(receipt));
    $("[data-standing]", section).href = standingUrl(receipt.period, participant);
    show(section, true);
    focus($("h2", section));
  }

  function showRefusal(text) {
    for (const section of [startSection, form, $("#sending")]) show(section, false);
    const section = $("#refused");
    say($("[data-refused-text]", section), text);
    show(section, true);
    focus($("h2", section));
  }

  async function send(pending) {
    sending.now = true;
    clearInterval(ticking);
    show(form, false);
    const section = $("#sending"), status = $("[data-sending-status]", section);
    show(section, true);
    focus($("h2", section));
    say(status, "Đang gửi bài…");
    const answer = await persist("POST", "/v1/submissions",
                                 { body: { token: pending.token, answers: pending.answers, prediction: pending.prediction } },
                                 (state, seconds, n) => say(status, retrying(state, seconds, n)));
    store.drop(names.pending);
    store.drop(names.attempt);
    if (answer.status === 202 || answer.status === 200) {
      const receipt = { ...answer.data, period: pending.period };
      store.set(names.receipt, receipt);
      showReceipt(receipt);
      return;
    }
    const error = errorOf(answer);
    showRefusal(SUBMIT_REFUSALS[error.code] || "Máy chủ không nhận bài (mã lỗi " + answer.status + "): " + (error.message || ""));
  }

  function submit(auto) {
    if (sending.now || !record) return;
    const answers = {};
    for (const [id, choice] of Object.entries(record.answers)) if (choice) answers[id] = choice;
    const typed = (record.prediction || "").trim();
    const pending = { token: record.token, answers, prediction: /^\d{1,15}$/.test(typed) ? Number(typed) : 0,
                      period: record.period, attempt_id: record.attempt_id, auto };
    store.set(names.pending, pending);  // from here on the page sends it, whatever happens to this tab
    send(pending);
  }

  function tick() {
    const left = Date.parse(record.deadline) - (Date.now() + record.offset);
    timer.textContent = clock(left);
    $(".timer-bar", form).classList.toggle("timer-low", left <= 60000);
    for (const [limit, text] of [[300000, "Còn 5 phút."], [60000, "Còn 1 phút."]]) {
      if (left <= limit && !record.said.includes(limit)) {
        record.said.push(limit);
        if (left > limit - 5000) say(timerAlert, text + " Hết giờ, trang tự nộp những câu đã trả lời.");
      }
    }
    if (left <= 0) submit(true);  // the deadline: what is answered goes, an empty prediction as 0
  }

  function open(saved) {
    record = saved;
    record.said = record.said || [];
    show(startSection, false);
    const list = $("#questions");
    list.textContent = "";
    record.questions.forEach((q, i) => {
      const item = document.createElement("li");
      item.className = "question";
      const fieldset = document.createElement("fieldset");
      fieldset.className = "fieldset";
      fieldset.setAttribute("role", "radiogroup");
      const legend = document.createElement("legend");
      const number = document.createElement("span");
      number.className = "number";
      number.textContent = "Câu " + (i + 1) + ". ";
      legend.append(number, q.text);
      fieldset.appendChild(legend);
      for (const letter of ["A", "B", "C", "D"]) {
        const row = document.createElement("div");
        row.className = "radio";
        const input = document.createElement("input");
        input.type = "radio";
        input.name = "q-" + i;
        input.id = "q" + i + "-" + letter;
        input.value = letter;
        input.dataset.question = q.id;
        input.checked = record.answers[q.id] === letter;
        const label = document.createElement("label");
        label.htmlFor = input.id;
        label.textContent = letter + ". " + (q.options[letter] || "");
        row.append(input, label);
        fieldset.appendChild(row);
      }
      item.appendChild(fieldset);
      list.appendChild(item);
    });
    form.elements.prediction.value = record.prediction || "";
    const intro = $("[data-attempt-intro]", form);
    say(intro, "Trả lời " + record.questions.length + " câu hỏi, điền câu hỏi dự đoán rồi bấm Nộp bài. Mỗi lựa chọn được lưu " +
        "ngay trên máy này. Hạn nộp: " + when(record.deadline) + " (giờ máy chủ).");
    show(form, true);
    focus(intro);
    tick();
    ticking = setInterval(tick, 250);
  }

  form.addEventListener("change", (event) => {
    const input = event.target;
    if (!record || !input.dataset.question) return;
    record.answers[input.dataset.question] = input.value;
    store.set(names.attempt, record);
  });
  form.elements.prediction.addEventListener("input", () => {
    if (!record) return;
    record.prediction = form.elements.prediction.value;
    store.set(names.attempt, record);
  });
  const dialog = $("#confirm");
  $("[data-confirm-send]", dialog).addEventListener("click", () => { dialog.close(); submit(false); });
  $("[data-confirm-back]", dialog).addEventListener("click", () => dialog.close());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (sending.now || !record) return;
    const typed = form.elements.prediction.value.trim();
    const errors = [];
    if (!typed) errors.push({ name: "prediction", text: "Nhập dự đoán của bạn: một số nguyên, ví dụ 1500." });
    else if (!/^\d{1,15}$/.test(typed)) errors.push({ name: "prediction", text: "Dự đoán là một số nguyên không âm, chỉ gồm chữ số (tối đa 15 chữ số)." });
    showErrors(form, summary, errors);
    if (errors.length) return;
    record.prediction = typed;
    store.set(names.attempt, record);
    const missing = record.questions.map((q, i) => (record.answers[q.id] ? 0 : i + 1)).filter(Boolean);
    if (missing.length) {
      say($("[data-confirm-text]", dialog), "Bạn còn " + missing.length + " câu chưa trả lời (câu " + missing.join(", ") +
          "). Câu bỏ trống không có điểm. Vẫn gửi bài?");
      dialog.showModal();
      return;
    }
    submit(false);
  });

  async function begin() {
    const button = $("#start-button");
    button.disabled = true;
    say(startStatus, "Đang bắt đầu…");
    const starting = store.get(names.starting) || { key: newIdempotencyKey() };
    store.set(names.starting, starting);  // a retry after a lost answer is the same start: no lượt spent twice
    const answer = await persist("POST", "/v1/attempts", { key, body: { participant_id: participant }, idempotency: starting.key },
                                 (state, seconds, n) => say(startStatus, retrying(state, seconds, n)), 5);
    button.disabled = false;
    if (!answer) {
      say(startStatus, "Không kết nối được máy chủ. Bấm lại nút để thử tiếp: lượt thi không bị tính hai lần.");
      return;
    }
    store.drop(names.starting);
    if (answer.status === 201) {
      const saved = { ...answer.data, offset: offsetOf(answer, Date.parse(answer.data.started_at)), answers: {}, prediction: "" };
      store.set(names.attempt, saved);
      say(startStatus, "");
      open(saved);
      return;
    }
    if (answer.status === 401 || answer.status === 404) return signedOut();
    const error = errorOf(answer);
    say(startStatus, START_REFUSALS[error.code] || "Chưa bắt đầu được (mã lỗi " + answer.status + "). Hãy thử lại.");
  }

  async function resume() {
    const pending = store.get(names.pending);
    if (pending) return send(pending);  // it never got its answer: send it again (the same entry)
    const saved = store.get(names.attempt);
    if (saved) return open(saved);  // past its deadline, tick() sends it at once: the server judges
    const receipt = store.get(names.receipt);
    if (receipt) {
      const box = $("[data-last-receipt]");
      const rows = receiptRows(receipt);
      rows.push(["Kết quả", link(standingUrl(receipt.period, participant), "Xem trên trang kết quả")]);
      dl($("[data-receipt-list]", box), rows);
      show(box, true);
    }
    const button = $("#start-button");
    if (button) button.addEventListener("click", begin);
    let answer = null;
    try { answer = await call("GET", "/v1/attempts/current", { key }); } catch (e) { answer = null; }
    if (answer && answer.status === 200) {  // an attempt started on another device (or before a crash)
      clockOffset = offsetOf(answer);
      const resumed = { ...answer.data, offset: offsetOf(answer), answers: {}, prediction: "" };
      store.set(names.attempt, resumed);
      return open(resumed);
    }
    if (answer && answer.status === 401) return signedOut();
  }

  $("[data-again]").addEventListener("click", () => location.reload());
  window.addEventListener("online", () => say($("[data-sending-status]"), "Đã có mạng lại; đang gửi…"));
  resume();
}

// -- /tai-khoan -------------------------------------------------------------------------------------------
async function accountView() {
  const key = store.get("key"), status = $("[data-account-status]");
  if (!key) {
    say(status, "");
    show($("#need-signin"), true);
    return;
  }
  const [info, answer] = await Promise.all([contestInfo().catch(() => null),
    persist("GET", "/v1/participants/me", { key }, (state, seconds, n) => say(status, retrying(state, seconds, n)), 4)]);
  if (!answer || answer.status !== 200) {
    if (answer && answer.status === 401) {
      store.drop("key");
      say(status, "");
      show($("#need-signin"), true);
      return;
    }
    say(status, "Chưa tải được dữ liệu; hãy tải lại trang sau ít phút.");
    return;
  }
  const me = answer.data, groups = new Map(((info && info.groups) || []).map((g) => [g.code, g.name]));
  const periods = new Map(((info && info.periods) || []).map((p) => [p.number, p.name]));
  dl($("[data-me]"), [
    ["Mã người dự thi", me.participant_id], ["Họ và tên", me.full_name], ["Đối tượng", groups.get(me.group) || me.group],
    ["Cơ quan, đơn vị", me.unit_name || "(không)"], ["Số điện thoại", me.phone_masked + " (đã che bớt)"],
    ["Ngày sinh", day(me.birth_date)], ["Đăng ký lúc", when(me.registered_at)],
    ["Đồng ý xử lý dữ liệu cá nhân", me.consent ? "Thông báo phiên bản " + me.consent.version + ", lúc " + when(me.consent.at) : "(cuộc thi không hỏi)"]]);
  const box = $("[data-periods]");
  box.textContent = "";
  for (const period of me.periods) {
    if (!period.attempts_started) continue;
    const heading = document.createElement("h3");
    heading.textContent = (periods.get(period.number) || "Tuần " + period.number) + ": đã bắt đầu " + period.attempts_started +
      " lượt, nộp " + period.receipts.length + " bài";
    const list = document.createElement("ul");
    list.className = "receipts";
    for (const r of period.receipts) {
      const item = document.createElement("li");
      item.append("Nộp lúc " + when(r.received_at) + ", làm trong " + duration(r.duration_ms) + ", mã bài nộp " + r.submission_id + ". ");
      item.appendChild(link(standingUrl(period.number, me.participant_id), "Kết quả"));
      list.appendChild(item);
    }
    box.append(heading, list);
  }
  if (!box.children.length) box.textContent = "Bạn chưa làm bài thi nào.";
  say(status, "");
  show($("#account"), true);
  $("[data-sign-out]").addEventListener("click", () => {
    if (store.get("pending:" + me.participant_id)) {
      say(status, "Còn một bài chưa gửi xong: mở trang Làm bài để gửi trước khi đăng xuất.");
      return;
    }
    for (const name of ["key", "attempt:" + me.participant_id, "receipt:" + me.participant_id]) store.drop(name);
    location.assign("/");
  });
  const confirmBox = $("#erase-confirm"), eraseStatus = $("[data-erase-status]");
  $("[data-erase]").addEventListener("click", () => { show(confirmBox, true); focus($("h3", confirmBox)); });
  $("[data-erase-cancel]").addEventListener("click", () => { show(confirmBox, false); focus($("[data-erase]")); });
  $("[data-erase-confirm]").addEventListener("click", async (event) => {
    event.target.disabled = true;
    const erasing = store.get("erasing:" + me.participant_id) || { key: newIdempotencyKey() };
    store.set("erasing:" + me.participant_id, erasing);  // a retry after a lost answer is the same erasure
    const done = await persist("POST", "/v1/participants/me/erasure", { key, body: { confirm: true }, idempotency: erasing.key },
                               (state, seconds, n) => say(eraseStatus, retrying(state, seconds, n)), 6);
    event.target.disabled = false;
    if (!done || done.status !== 202) {
      say(eraseStatus, done && done.status === 401 ? "Mã truy cập không còn hiệu lực: dữ liệu có thể đã được xoá."
        : "Chưa xoá được; hãy thử lại sau ít phút.");
      return;
    }
    for (const name of ["key", "erasing:" + me.participant_id, "attempt:" + me.participant_id,
                        "receipt:" + me.participant_id]) store.drop(name);
    show($("#account"), false);
    $("[data-erased-at]").textContent = when(done.data.erased_at);
    const erased = $("#erased");
    show(erased, true);
    focus($("h2", erased));
  });
}

// -- every view: countdowns on the server's clock ----------------------------------------------------------
function countdowns() {
  const all = document.querySelectorAll("[data-countdown]");
  if (!all.length) return;
  const loaded = serverNow();
  const tick = () => {
    for (const element of all) {
      const target = Date.parse(element.dataset.countdown);
      element.textContent = countdownText(target - serverNow());
      // a period opened or ended while the page was open: the server's page says what now
      if (target > loaded && serverNow() > target + 1500 && !sessionStorage.getItem("reloaded:" + target)) {
        sessionStorage.setItem("reloaded:" + target, "1");
        if (!document.querySelector("#attempt:not([hidden]), #sending:not([hidden])")) location.reload();
      }
    }
  };
  tick();
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const view = body.dataset.view;
  // /thi corrects its clock with its own calls (GET /v1/attempts/current, the start): at the peak it asks
  // nothing more; the other views ask /v1/contest (through the browser's cache) for the server's Date.
  if (view === "/thi") countdowns(); else contestInfo().then(countdowns, countdowns);
  if (view === "/" && store.get("key")) show($("[data-signed-in]"), true);
  if (view === "/dang-ky") registerView();
  else if (view === "/dang-nhap") signinView();
  else if (view === "/thi") attemptView();
  else if (view === "/tai-khoan") accountView();
});
