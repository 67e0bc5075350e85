// The desk's progressive touches: countdowns to a cut-off, and copying a new access key. Every page works
// without it.
"use strict";

function countdownText(ms) {
  if (ms <= 0) return "(đã đến giờ)";
  const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
    m = Math.floor(s % 3600 / 60), sec = s % 60, pad = (n) => String(n).padStart(2, "0");
  return "(còn " + (d ? d + " ngày " : "") + pad(h) + ":" + pad(m) + ":" + pad(sec) + ")";
}

function tick() {
  for (const el of document.querySelectorAll("[data-countdown]")) {
    el.textContent = countdownText(Number(el.dataset.countdown) - Date.now());
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Đã sao chép";
      } catch (err) {
        button.textContent = "Không sao chép được: hãy chọn và sao chép tay";
      }
    });
  }
});
