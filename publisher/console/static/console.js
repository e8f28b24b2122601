// The console's own script (no inline scripts: the CSP allows none).
// htmx requests carry this session's CSRF token (publisher/console/web.py).
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) {
    event.detail.headers["X-CSRF-Token"] = meta.content;
  }
});
