// Keeps a liveblog page current: created, edited and deleted posts arrive over the stream.
// Every frame of a change carries the liveblog's change number (seq); on every (re)connect
// the stream is asked for the changes after the last one this page saw without a gap.
(function () {
  "use strict";
  var list = document.getElementById("posts");
  var status = document.getElementById("status");
  var title = document.getElementById("title");
  var streamPath = list.dataset.stream;
  // Changes up to `cursor` are all shown; `ahead` holds those seen beyond a gap (a frame
  // overtaken by a later one), so that the cursor moves on only when the gap is filled.
  var cursor = parseInt(list.dataset.since, 10) || 0;
  var ahead = {};
  // The seq of what the page shows of each post (a deleted one's too), so that a
  // repeated or overtaken frame never undoes a newer change.
  var shown = {};
  Array.prototype.forEach.call(list.children, function (item) {
    shown[item.dataset.id] = parseInt(item.dataset.seq, 10) || 0;
  });

  function advance() {
    while (ahead[cursor + 1]) {
      delete ahead[cursor + 1];
      cursor += 1;
    }
  }

  function saw(seq) {
    if (seq > cursor) {
      ahead[seq] = true;
      advance();
    }
  }

  // The end of a catch-up: every change up to seq is shown (the catch-up sends a post
  // changed twice once, so it skips numbers).
  function synced(seq) {
    cursor = seq;
    Object.keys(ahead).forEach(function (key) {
      if (parseInt(key, 10) <= seq) { delete ahead[key]; }
    });
    advance();
  }

  // WebSocketBridge reconnects with the constructor it is given: this one asks for what
  // was missed, at the stream's current address (a renamed liveblog has a new one).
  function CatchUpWebSocket(url, protocols) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return new WebSocket(scheme + window.location.host + streamPath + "?since=" + cursor, protocols);
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

  function apply(frame) {
    var id = frame.post.id;
    if ((shown[id] || 0) < frame.seq) {
      shown[id] = frame.seq;
      if (frame.type === "post.deleted") {
        var gone = document.getElementById("post-" + id);
        if (gone) { gone.remove(); }
      } else {
        render(frame.post);
        document.getElementById("post-" + id).dataset.seq = frame.seq;
      }
    }
    saw(frame.seq);
  }

  var bridge = new channels.WebSocketBridge();

  // Told when to come back, in the frame before the close: sent away (too many connections or
  // frames from this browser, 4430), the server restarting (4012: a daphne draining, each page
  // told a different moment so that they do not all return at once), or busy (4013: the workers
  // are behind). The page stays away that long: its reconnect is held here, before the close
  // arrives.
  var COME_BACK_LATER = {
    "too-many-connections": "too many connections",
    "server.restarting": "the server is restarting",
    "server-busy": "the server is busy"
  };

  function stayAway(seconds, why) {
    status.textContent = why + ": reconnecting in " + seconds + " s";
    status.dataset.state = "away";
    live.comeBackIn(seconds);
  }

  function onFrame(frame) {
    var comeBack = COME_BACK_LATER[frame.error || frame.type];
    if (comeBack && typeof frame.retry_after === "number") {
      stayAway(frame.retry_after, comeBack);
      return;
    }
    if (frame.error) {
      status.textContent = frame.message || frame.error;
      status.dataset.state = "error";
      return;
    }
    if (frame.type === "post.created" || frame.type === "post.updated" || frame.type === "post.deleted") {
      apply(frame);
    } else if (frame.type === "liveblog.synced") {
      synced(frame.seq);
    } else if (frame.type === "liveblog.renamed") {
      streamPath = frame.stream;
      title.textContent = frame.title;
      document.title = frame.title;
      window.history.replaceState(null, "", frame.url);
    }
  }

  // Reconnects after a drop (channels1_kit/static/channels1_kit/live-socket.js says why not WebSocketBridge itself).
  var live = liveSocket(bridge, {
    path: function () { return streamPath; },
    webSocket: CatchUpWebSocket,
    onSocket: watch
  });

  function watch(socket) {
    bridge.listen(onFrame);
    socket.addEventListener("open", function () {
      status.textContent = "live";
      status.dataset.state = "open";
    });
    socket.addEventListener("close", function (event) {
      // 4404: the liveblog is gone (deleted); reconnecting would only be told so again.
      if (event.code === 4404) {
        live.stop();
      }
      if (status.dataset.state === "error" || status.dataset.state === "away") { return; }
      status.textContent = "reconnecting…";
      status.dataset.state = "closed";
    });
  }
  live.start();
})();
