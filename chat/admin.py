from django.contrib import admin

from . import services
from .models import Message, Room


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


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "room", "user", "created"]
    list_filter = ["room"]
