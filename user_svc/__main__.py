from common.service import run
from user_svc.app import create_user_app
from user_svc.settings import UserSettings

settings = UserSettings()
run(create_user_app(settings), settings)
