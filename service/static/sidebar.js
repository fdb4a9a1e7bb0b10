// i-Score sidebar: poll the JSON feed with its ETag and redraw the rows in place (no page reload).
(function () {
  "use strict";
  var table = document.getElementById("isb");
  if (!table || !window.fetch) return;
  var feed = table.getAttribute("data-feed"), etag = table.getAttribute("data-etag");
  var every = Math.max(1, Number(table.getAttribute("data-refresh")) || 30) * 1000;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;  // text only: a headline never becomes markup
    return e;
  }
  function row(s) {
    var tr = el("tr"), red = s.tier === "red", title = el("td", "isb-title"), label = red ? "top tier" : "below the top tier";
    tr.setAttribute("data-story-id", s.story_id);
    tr.setAttribute("data-tier", s.tier);
    tr.appendChild(el("td", "isb-rank", String(s.rank)));
    var link = /^https?:\/\//i.test(s.url || "") ? el("a", "", s.headline) : null;
    if (link) { link.href = s.url; link.target = "_blank"; link.rel = "noopener noreferrer"; }
    title.appendChild(link || document.createTextNode(s.headline));
    if (s.coverage) title.appendChild(el("span", "isb-cov", s.coverage + (s.coverage === 1 ? " outlet" : " outlets")));
    var badge = el("span", "isb-badge isb-" + s.tier), icon = el("span", "", red ? "\uD83D\uDD34" : "\uD83D\uDD35");
    badge.title = label;
    icon.setAttribute("aria-hidden", "true");
    badge.appendChild(icon);
    badge.appendChild(document.createTextNode(" " + Math.round(s.i_score) + " / 100"));
    badge.appendChild(el("span", "isb-vh", ", " + label));
    var score = el("td", "isb-score");
    score.appendChild(badge);
    tr.appendChild(title);
    tr.appendChild(score);
    return tr;
  }
  function draw(stories) {
    var body = el("tbody");
    stories.forEach(function (s) { body.appendChild(row(s)); });
    if (!stories.length) {
      var empty = el("tr", "isb-empty"), cell = el("td", "", "No headlines in this window yet.");
      cell.colSpan = 3;
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    table.replaceChild(body, table.tBodies[0]);
  }
  function poll() {
    fetch(feed, { headers: etag ? { "If-None-Match": etag } : {}, cache: "no-store", credentials: "omit" })
      .then(function (r) {
        if (r.status !== 200) return;
        etag = r.headers.get("ETag");
        return r.json().then(function (b) { draw(b.stories); });
      })
      .catch(function () {})  // offline or restarting: keep the rows, try again later
      .then(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
