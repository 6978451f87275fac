from qkms.cli import main

main()
