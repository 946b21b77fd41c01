/* Team section, progressive enhancement on top of htmx: every form here also works without this file.
   - sends the CSRF token as a header on htmx requests;
   - applies removals / revocations / role changes at once (optimistic) and puts them back if refused,
     showing the server's message in the page's live region. */
(function () {
  "use strict";
  document.documentElement.classList.add("team-js");

  function flash(kind, text) {
    var box = document.getElementById("team-flash");
    if (!box) { return; }
    box.textContent = "";
    var div = document.createElement("div");
    div.className = "alert alert-" + kind;
    div.setAttribute("role", kind === "error" ? "alert" : "status");
    div.textContent = text;
    box.appendChild(div);
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["x-csrftoken"] = meta.getAttribute("content"); }
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var row = elt.closest && elt.closest("tr");
    if (!row) { return; }
    if (elt.getAttribute("data-optimistic") === "hide") { row.hidden = true; }
    row.classList.add("is-saving");
  });

  function undo(event) {
    var elt = event.detail.elt;
    var row = elt.closest && elt.closest("tr");
    if (row) {
      row.hidden = false;
      row.classList.remove("is-saving");
      var select = row.querySelector("select[data-current]");
      if (select) { select.value = select.getAttribute("data-current"); }
    }
    var xhr = event.detail.xhr;
    var text = xhr && xhr.status && xhr.responseText && xhr.responseText.length < 600 ? xhr.responseText
      : "That did not work. Check your connection and try again.";
    flash("error", text);
  }
  document.addEventListener("htmx:responseError", undo);
  document.addEventListener("htmx:sendError", undo);
})();
