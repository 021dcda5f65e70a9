// Keeps a liveblog page current: created, edited and deleted posts arrive over the stream.
// On every (re)connect the stream is asked for the posts after the newest one shown.
(function () {
  "use strict";
  var list = document.getElementById("posts");
  var status = document.getElementById("status");
  var newestId = parseInt(list.dataset.since, 10) || 0;

  // WebSocketBridge reconnects with the constructor it is given, so this one adds
  // the id of the newest post seen to every connection it opens.
  function CatchUpWebSocket(url, protocols) {
    return new WebSocket(url + "?since=" + newestId, protocols);
  }
  CatchUpWebSocket.CLOSING = WebSocket.CLOSING;

  // Every post's time in one format, the reader's: the server wrote the page's own in
  // Django's format and UTC, so those are rewritten from their datetime attribute.
  function showTime(time, iso) {
    time.setAttribute("datetime", iso);
    time.textContent = new Date(iso).toLocaleString();
  }
  Array.prototype.forEach.call(list.querySelectorAll("time[datetime]"), function (time) {
    showTime(time, time.getAttribute("datetime"));
  });

  function render(post) {
    var item = document.getElementById("post-" + post.id);
    if (!item) {
      item = document.createElement("li");
      item.className = "post";
      item.id = "post-" + post.id;
      item.dataset.id = post.id;
      item.appendChild(document.createElement("time"));
      var body = document.createElement("span");
      body.className = "body";
      item.appendChild(body);
      // Newest first; a replayed older post still lands in order.
      var before = null;
      for (var i = 0; i < list.children.length; i++) {
        if (parseInt(list.children[i].dataset.id, 10) < post.id) { before = list.children[i]; break; }
      }
      list.insertBefore(item, before);
    }
    showTime(item.querySelector("time"), post.created);
    item.querySelector(".body").textContent = post.body;
  }

  var bridge = new channels.WebSocketBridge();
  bridge.connect(list.dataset.stream, undefined, { constructor: CatchUpWebSocket });
  bridge.listen(function (frame) {
    if (frame.error) {
      status.textContent = frame.message || frame.error;
      status.dataset.state = "error";
      return;
    }
    if (frame.type === "post.created" || frame.type === "post.updated") {
      render(frame.post);
      newestId = Math.max(newestId, frame.post.id);
    } else if (frame.type === "post.deleted") {
      var gone = document.getElementById("post-" + frame.post.id);
      if (gone) { gone.remove(); }
    }
  });
  bridge.socket.addEventListener("open", function () {
    status.textContent = "live";
    status.dataset.state = "open";
  });
  bridge.socket.addEventListener("close", function () {
    status.textContent = "reconnecting…";
    status.dataset.state = "closed";
  });
})();
