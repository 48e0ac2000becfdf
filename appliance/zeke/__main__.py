from zeke.cli.main import run

run()
