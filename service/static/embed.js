// i-Score sidebar embed: <script src="https://ISCORE-HOST/static/embed.js" async></script> puts the sidebar in an
// iframe right after the script tag. Optional data-width / data-height / data-limit attributes on the tag.
(function () {
  "use strict";
  var s = document.currentScript;
  if (!s) return;
  var origin = new URL(s.src).origin, f = document.createElement("iframe");
  var limit = parseInt(s.getAttribute("data-limit") || "10", 10);
  f.src = origin + "/sidebar" + (limit > 0 && limit !== 10 ? "?limit=" + limit : "");
  f.title = "Top news by importance score";
  f.width = s.getAttribute("data-width") || "360";
  f.height = s.getAttribute("data-height") || "780";
  f.setAttribute("frameborder", "0");
  f.setAttribute("loading", "lazy");
  f.setAttribute("referrerpolicy", "no-referrer");
  s.parentNode.insertBefore(f, s.nextSibling);
})();
