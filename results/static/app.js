// The results page's progressive touches: countdowns, and the live refresh of an open period's
// leaderboard from the JSON API. Everything works without it; it only keeps figures current.
"use strict";

function countdownText(ms) {
  if (ms <= 0) return "(đã đến giờ)";
  const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
    m = Math.floor(s % 3600 / 60), sec = s % 60, pad = (n) => String(n).padStart(2, "0");
  return "(còn " + (d ? d + " ngày " : "") + pad(h) + ":" + pad(m) + ":" + pad(sec) + ")";
}

function tickCountdowns() {
  for (const el of document.querySelectorAll("[data-countdown]")) {
    el.textContent = countdownText(Date.parse(el.dataset.countdown) - Date.now());
  }
}

function cell(row, text, tag) {
  const td = document.createElement(tag || "td");
  if (tag === "th") td.scope = "row";
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  return s >= 60 ? Math.floor(s / 60) + " phút " + String(s % 60).padStart(2, "0") + " giây"
    : (ms / 1000).toFixed(1).replace(".", ",") + " giây";
}

function when(iso) {  // "2022-08-22T08:00:00.000+07:00" → "08:00 22/08/2022", in the contest's own time
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso);
  return m ? m[4] + ":" + m[5] + " " + m[3] + "/" + m[2] + "/" + m[1] : iso;
}

async function refreshLeaderboard(table, status) {
  try {
    const answer = await fetch(table.dataset.liveSrc, { headers: { Accept: "application/json" } });
    if (!answer.ok) throw new Error(String(answer.status));
    const board = await answer.json();
    // Closed, or frozen since the page was sent (DESIGN §3): the page says so, from the server.
    if (board.final || (board.frozen_at && !document.querySelector("[data-frozen]"))) {
      window.location.reload(); return;
    }
    const body = document.createElement("tbody");
    const period = window.location.pathname.split("/")[2];
    for (const e of board.entries) {
      const row = document.createElement("tr");
      cell(row, String(e.rank));
      const name = cell(row, "", "th"), link = document.createElement("a");
      link.href = "/periods/" + period + "/participants/" + encodeURIComponent(e.participant_id);
      link.textContent = e.display_name;
      name.appendChild(link);
      cell(row, e.unit_name || "");
      cell(row, String(e.score));
      cell(row, duration(e.duration_ms));
      cell(row, e.prediction.toLocaleString("vi-VN"));
      const time = document.createElement("time");
      time.dateTime = e.submitted_at;
      time.textContent = when(e.submitted_at);
      cell(row, "").appendChild(time);
      body.appendChild(row);
    }
    if (!board.entries.length) cell(body.insertRow(), "Chưa có bài thi nào.").colSpan = 7;
    table.replaceChild(body, table.tBodies[0]);
    const timeZone = document.body.dataset.timezone || undefined;  // the contest's time, as the page shows it
    if (status) status.textContent = "Cập nhật lúc " + new Date().toLocaleTimeString("vi-VN", { timeZone }) + ".";
  } catch (err) {
    if (status) status.textContent = "Chưa cập nhật được; sẽ thử lại.";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tickCountdowns();
  setInterval(tickCountdowns, 1000);
  const table = document.querySelector("table[data-live-src]");
  if (table) {
    const status = document.querySelector("[data-live-status]");
    refreshLeaderboard(table, status);
    setInterval(() => refreshLeaderboard(table, status), 15000);
  }
});
