# Sourced by the scripts that build the phone library (bindings/generate.sh --release,
# android/build-jnilibs.sh, ios/build-xcframework.sh); not by the host tests.
#
# Leaves out of the bundled SQLite the extensions the core does not use (full-text search, R*Tree,
# dbstat, STAT4, soundex, column metadata, deprecated APIs): about -290 KB of the stripped library
# (README, Bindings). Each only removes an API, so a use fails loudly ("no such module"), never
# silently. If the core starts using one of them, delete its flag here.
export LIBSQLITE3_FLAGS="-USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS -USQLITE_ENABLE_FTS5 \
-USQLITE_ENABLE_RTREE -USQLITE_ENABLE_DBSTAT_VTAB -USQLITE_ENABLE_STAT4 -USQLITE_SOUNDEX \
-USQLITE_ENABLE_COLUMN_METADATA -DSQLITE_OMIT_DEPRECATED -DSQLITE_DEFAULT_MEMSTATUS=0"

# Packed relative relocations (DT_RELR; binutils >= 2.38, glibc >= 2.36) for Linux builds of the
# library: its ~240 KB .rela.dyn table shrinks to a few KB (README, Bindings). Android builds get the
# equivalent (--pack-dyn-relocs=android) in android/build-jnilibs.sh; Apple's linker packs fixups itself.
if [ "$(uname -s)" = Linux ]; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-z,pack-relative-relocs"
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-z,pack-relative-relocs"
fi
