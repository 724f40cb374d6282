# Kanto distro only: the A/B script (firmware/scripts/grub-ab.cfg) needs
# loadenv/save_env, regexp and echo in the EFI image. Inert in other distros.
GRUB_BUILDIN:append:kanto = " loadenv regexp echo test ext2 part_gpt"
