from django.contrib import admin

from .models import Message, Presence, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "staff_only"]
    prepopulated_fields = {"slug": ["title"]}


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "room", "user", "created"]
    list_filter = ["room"]


@admin.register(Presence)
class PresenceAdmin(admin.ModelAdmin):
    list_display = ["user", "room", "reply_channel", "joined"]
    list_filter = ["room"]
