from django.contrib import admin

from . import services
from .models import Message, Presence, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "staff_only"]
    prepopulated_fields = {"slug": ["title"]}

    # Through the services, so that the pages hear of a new slug or title, and that the room is gone.
    def save_model(self, request, obj, form, change):
        if change:
            services.room_update(room=obj, title=obj.title, slug=obj.slug, staff_only=obj.staff_only)
        else:
            obj.pk = services.room_create(title=obj.title, slug=obj.slug, staff_only=obj.staff_only).pk

    def delete_model(self, request, obj):
        services.room_delete(room=obj)

    def delete_queryset(self, request, queryset):
        for room in queryset:
            services.room_delete(room=room)

    def get_deleted_objects(self, objs, request):
        # Presences are read-only in the admin (no delete permission), which would make Django
        # refuse to delete a room anyone is in; they go with their room, as its messages do.
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(Presence._meta.verbose_name)
        return deleted, model_count, perms_needed, protected


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "room", "user", "created"]
    list_filter = ["room"]


@admin.register(Presence)
class PresenceAdmin(admin.ModelAdmin):
    """Read-only: presences are the sockets' own, made and removed by joins, leaves and the sweep;
    one edited here would put a count out of step with the room's group and its seq."""

    list_display = ["user", "room", "reply_channel", "joined"]
    list_filter = ["room"]
    list_display_links = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
