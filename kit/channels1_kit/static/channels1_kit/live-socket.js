// One live socket for a page, kept open as WebSocketBridge keeps it (after a drop: 1.5-3 s at
// random, then x1.3 each time up to 10 s), but each attempt on a ReconnectingWebSocket of its own.
//
// Why not WebSocketBridge's own reconnecting: the reconnecting-websocket bundled in channels
// 1.1.8's websocketbridge.js arms a 4 s connection timer for every attempt, clears it only when
// that attempt opens, and the timer closes whichever socket is current when it fires. An attempt
// that failed (the server was down) leaves its timer armed; when the next attempt opens within
// those 4 s (retries come every 1.5-4 s at first), the page is dropped again a moment after it
// got back, and is away for another 1.5-3 s: a message sent then is refused, and every page
// coming back from a restart makes one more handshake. With one ReconnectingWebSocket per
// attempt (maxRetries 0: it never retries itself), a stale timer can only close its own
// attempt's socket, which is already closed.
//
//   var live = liveSocket(bridge, {
//     path: function () { return "/stream/"; },      // each attempt's URL (may change)
//     webSocket: MyWebSocket,                        // optional constructor
//     onSocket: function (socket) { ... },           // each attempt's socket: add listeners
//   });
//   live.start();
//   live.comeBackIn(seconds);   // closes the socket; the next attempt in `seconds` (retry_after)
//   live.stop();                // closes the socket for good
(function () {
  "use strict";
  var FIRST_DELAY_MS = 1500;  // the first retry within 1.5-3 s, as WebSocketBridge's
  var GROWTH = 1.3;
  var MAX_DELAY_MS = 10000;

  window.liveSocket = function (bridge, options) {
    var socket = null;
    var timer = null;
    var delay = 0;
    var held = false;  // told to stay away (comeBackIn) or closed for good (stop)

    function connect() {
      timer = null;
      held = false;
      var config = { maxRetries: 0 };
      if (options.webSocket) { config.constructor = options.webSocket; }
      bridge.connect(options.path(), undefined, config);
      var current = bridge.socket;
      socket = current;
      current.addEventListener("open", function () { delay = 0; });
      current.addEventListener("close", function () {
        if (current !== socket || held || timer !== null) { return; }
        delay = delay ? Math.min(delay * GROWTH, MAX_DELAY_MS) : FIRST_DELAY_MS * (1 + Math.random());
        timer = window.setTimeout(connect, delay);
      });
      options.onSocket(current);
    }

    function hold() {
      held = true;
      if (timer !== null) { window.clearTimeout(timer); timer = null; }
      // fastClose false: the page's own close listener runs once, on the real close.
      socket.close(1000, "", { keepClosed: true, fastClose: false });
    }

    return {
      start: connect,
      comeBackIn: function (seconds) {
        hold();
        timer = window.setTimeout(connect, seconds * 1000);
      },
      stop: hold
    };
  };
})();
