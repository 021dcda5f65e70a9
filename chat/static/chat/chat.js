// The chat page: join rooms, send messages, see who is here. Everything a user typed is
// put on the page with textContent, never as HTML. After a reconnect the page joins its
// rooms again and asks for the messages after the last one it has.
(function () {
  "use strict";
  var roomsList = document.getElementById("rooms");
  var status = document.getElementById("status");
  var errors = document.getElementById("errors");
  var joined = {};  // slug -> id of the newest message shown
  // slug -> the presence seq of the count shown: frames about presence can arrive out of order
  // (the lobby's count and the room's notice come through different groups), and one whose
  // seq is not above this is older than what the page shows.
  var seqs = {};
  Array.prototype.forEach.call(roomsList.querySelectorAll(".room[data-seq]"), function (room) {
    seqs[room.dataset.room] = Number(room.dataset.seq) || 0;
  });

  function roomElement(slug) {
    return roomsList.querySelector('.room[data-room="' + CSS.escape(slug) + '"]');
  }

  function appendLine(slug, text, className, id) {
    var room = roomElement(slug);
    if (!room) { return; }
    var log = room.querySelector(".log");
    if (id && log.querySelector('[data-id="' + id + '"]')) { return; }
    var line = document.createElement("li");
    if (className) { line.className = className; }
    if (id) { line.dataset.id = id; }
    line.textContent = text;
    log.appendChild(line);
    log.scrollTop = log.scrollHeight;
  }

  function showMessage(frame) {
    appendLine(frame.room, frame.username + ": " + frame.message, "message", frame.id);
    if (frame.room in joined) { joined[frame.room] = Math.max(joined[frame.room], frame.id); }
  }

  function setMembers(slug, members) {
    var room = roomElement(slug);
    if (room) { room.querySelector(".count").textContent = members; }
  }

  function setJoined(slug, isJoined) {
    var room = roomElement(slug);
    if (!room) { return; }
    room.querySelector(".join").hidden = isJoined;
    room.querySelector(".leave").hidden = !isJoined;
    room.querySelector(".conversation").hidden = !isJoined;
  }

  // True if the frame is newer than the count shown (and records its seq); false to ignore it.
  function isNewer(slug, seq) {
    if (typeof seq !== "number") { return true; }
    if (slug in seqs && seq <= seqs[slug]) { return false; }
    seqs[slug] = seq;
    return true;
  }

  // Deleted in the admin: the room stays on the page, marked gone, without its buttons.
  function setDeleted(slug, text) {
    delete joined[slug];
    delete seqs[slug];
    var room = roomElement(slug);
    if (!room || room.dataset.deleted) { return; }
    room.dataset.deleted = "true";
    room.classList.add("deleted");
    room.querySelector(".join").hidden = true;
    room.querySelector(".leave").hidden = true;
    room.querySelector(".send").hidden = true;
    var note = document.createElement("p");
    note.className = "gone";
    note.textContent = text || "This room was deleted.";
    room.appendChild(note);
  }

  // Renamed in the admin: the same room (and membership) under its new slug and title.
  function setRenamed(oldSlug, slug, title) {
    var room = roomElement(oldSlug);
    if (!room || oldSlug === slug && room.querySelector("strong").textContent === title) { return; }
    room.dataset.room = slug;
    room.querySelector("strong").textContent = title;
    if (oldSlug !== slug) {
      if (oldSlug in joined) { joined[slug] = joined[oldSlug]; delete joined[oldSlug]; }
      if (oldSlug in seqs) { seqs[slug] = seqs[oldSlug]; delete seqs[oldSlug]; }
    }
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

  // A socket that is (re)connecting throws on send: say so, and keep what was typed.
  function sendCommand(command) {
    if (bridge.socket.readyState !== WebSocket.OPEN) {
      errors.textContent = "Not connected: reconnecting, try again in a moment.";
      return false;
    }
    bridge.send(command);
    return true;
  }

  function onFrame(frame) {
    var comeBack = COME_BACK_LATER[frame.error || frame.type];
    if (comeBack && typeof frame.retry_after === "number") {
      if (frame.error) {
        errors.textContent = frame.message;
      }
      stayAway(frame.retry_after, comeBack);
      return;
    }
    if (frame.error) {
      errors.textContent = frame.message || frame.error;
      return;
    }
    errors.textContent = "";
    if (frame.join) {
      if (!(frame.join in joined)) { joined[frame.join] = 0; }
      setJoined(frame.join, true);
      if (isNewer(frame.join, frame.seq)) { setMembers(frame.join, frame.members); }
      frame.messages.forEach(showMessage);
    } else if (frame.leave) {
      delete joined[frame.leave];
      setJoined(frame.leave, false);
    } else if (frame.history) {
      frame.messages.forEach(showMessage);
    } else if (frame.type === "message") {
      showMessage(frame);
    } else if (frame.type === "joined" || frame.type === "left") {
      if (!isNewer(frame.room, frame.seq)) { return; }
      appendLine(frame.room, frame.username + " " + frame.type, "notice");
      setMembers(frame.room, frame.members);
    } else if (frame.type === "presence") {
      if (!isNewer(frame.room, frame.seq)) { return; }
      setMembers(frame.room, frame.members);
    } else if (frame.type === "room.deleted") {
      setDeleted(frame.room, frame.message);
    } else if (frame.type === "room.renamed") {
      setRenamed(frame.room, frame.slug, frame.title);
    }
  }

  // Reconnects after a drop (channels1_kit/static/channels1_kit/live-socket.js says why not WebSocketBridge itself).
  var live = liveSocket(bridge, {
    path: function () { return roomsList.dataset.stream; },
    onSocket: watch
  });

  function watch(socket) {
    bridge.listen(onFrame);
    socket.addEventListener("open", function () {
      status.textContent = "live";
      status.dataset.state = "open";
      // A new connection has no rooms yet: join again, asking only for what was missed.
      Object.keys(joined).forEach(function (slug) {
        if (roomElement(slug) && roomElement(slug).dataset.deleted) { return; }
        bridge.send({ command: "join", room: slug, since: joined[slug] });
      });
    });
    socket.addEventListener("close", function () {
      if (status.dataset.state === "away") { return; }
      status.textContent = "reconnecting…";
      status.dataset.state = "closed";
    });
  }
  live.start();

  roomsList.addEventListener("click", function (event) {
    var room = event.target.closest(".room");
    if (!room || room.dataset.deleted) { return; }
    if (event.target.classList.contains("join")) {
      sendCommand({ command: "join", room: room.dataset.room });
    } else if (event.target.classList.contains("leave")) {
      sendCommand({ command: "leave", room: room.dataset.room });
    }
  });

  roomsList.addEventListener("submit", function (event) {
    event.preventDefault();
    var room = event.target.closest(".room");
    if (!room || room.dataset.deleted) { return; }
    var input = event.target.querySelector("input[name=message]");
    if (!input.value.trim()) { return; }
    if (sendCommand({ command: "send", room: room.dataset.room, message: input.value })) {
      input.value = "";
    }
  });
})();
