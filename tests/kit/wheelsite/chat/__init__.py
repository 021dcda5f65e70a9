default_app_config = "chat.apps.ChatConfig"
