from image_build.cli import main

main()
