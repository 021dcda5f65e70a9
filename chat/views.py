from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from . import selectors


@login_required
def index(request):
    rooms = list(selectors.rooms_visible_to(user=request.user))
    counts = selectors.room_member_counts(rooms=rooms)
    room_rows = [{"room": room, "members": counts[room.slug].members, "seq": counts[room.slug].seq} for room in rooms]
    return render(request, "chat/index.html", {"room_rows": room_rows})
