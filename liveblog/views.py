from django.http import Http404
from django.shortcuts import render

from . import selectors


def index(request):
    return render(request, "liveblog/index.html", {"liveblogs": selectors.liveblog_list()})


def detail(request, slug: str):
    liveblog = selectors.liveblog_get(slug=slug)
    if liveblog is None:
        raise Http404("No such liveblog.")
    posts = selectors.post_list(liveblog=liveblog)
    return render(request, "liveblog/detail.html", {"liveblog": liveblog, "posts": posts})
