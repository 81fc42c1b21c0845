/* Progressive enhancement only: every page works without this file.
 *
 * - The Place order button is disabled after the first click (a second submit would only be
 *   answered with the same order anyway: the form carries a one-time token).
 * - A pending order's page counts its hold down every second and polls the order's JSON status;
 *   it reloads once the status changes or the time is up. Without JavaScript a <noscript> meta
 *   refresh reloads the page instead.
 */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("place-order")) return;
    var button = form.querySelector("button[type=submit]");
    if (button) window.setTimeout(function () { button.disabled = true; }, 0);
  });

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function startOrderStatus(box) {
    var url = box.getAttribute("data-order-status-url");
    var every = parseInt(box.getAttribute("data-refresh-seconds"), 10) || 5;
    var countdown = box.querySelector(".countdown");
    var timeLeft = box.querySelector(".time-left");
    var secondsLeft = countdown ? parseInt(countdown.getAttribute("data-seconds-left"), 10) || 0 : 0;
    var deadline = Date.now() + secondsLeft * 1000;
    var expiredShown = false;

    function tick() {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      if (timeLeft) timeLeft.textContent = Math.floor(left / 60) + ":" + pad(left % 60);
      if (left === 0 && countdown && !expiredShown) {
        expiredShown = true;
        countdown.textContent = countdown.getAttribute("data-expired-text");
      }
    }

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (data && data.is_final) { window.location.reload(); return; }
          if (data) deadline = Date.now() + data.seconds_left * 1000;
          window.setTimeout(poll, every * 1000);
        })
        .catch(function () { window.setTimeout(poll, every * 1000 * 2); });
    }

    tick();
    window.setInterval(tick, 1000);
    window.setTimeout(poll, every * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll("[data-order-status-url]");
    for (var i = 0; i < boxes.length; i++) startOrderStatus(boxes[i]);
  });
})();
