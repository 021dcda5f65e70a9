"""Posts are published here; the admin writes through the services so open pages hear of it."""

from django.contrib import admin

from . import services
from .models import Liveblog, Post


@admin.register(Liveblog)
class LiveblogAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "created"]
    prepopulated_fields = {"slug": ["title"]}
    readonly_fields = ["seq"]

    def save_model(self, request, obj, form, change):
        if change:
            services.liveblog_update(liveblog=obj, title=obj.title, slug=obj.slug)
        else:
            created = services.liveblog_create(title=obj.title, slug=obj.slug)
            obj.pk, obj.created = created.pk, created.created

    def delete_model(self, request, obj):
        services.liveblog_delete(liveblog=obj)

    def delete_queryset(self, request, queryset):
        for liveblog in queryset:
            services.liveblog_delete(liveblog=liveblog)


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["__str__", "liveblog", "created", "updated"]
    list_filter = ["liveblog"]
    # The change numbers are the services' to give.
    exclude = ["created_seq", "seq"]

    def save_model(self, request, obj, form, change):
        if change:
            services.post_update(post=obj, body=obj.body)
        else:
            created = services.post_create(liveblog=obj.liveblog, body=obj.body)
            obj.pk = created.pk
            obj.created, obj.updated = created.created, created.updated

    def delete_model(self, request, obj):
        services.post_delete(post=obj)

    def delete_queryset(self, request, queryset):
        for post in queryset.select_related("liveblog"):
            services.post_delete(post=post)
