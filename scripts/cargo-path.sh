# Sourced by the other scripts: puts cargo-installed tools (worker-build, wasm-bindgen)
# on PATH, since the shell that runs us (npm's, wrangler's build step) may lack it.
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
    *":$CARGO_BIN:"*) ;;
    *) PATH="$CARGO_BIN:$PATH"; export PATH ;;
esac
