// Marks the page once every image has loaded: <html data-images="loaded/total">, read by tests/test_docs_site.py
// (a plot that fails to load shows as loaded < total).
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  document.documentElement.setAttribute("data-images", loaded + "/" + images.length);
});
