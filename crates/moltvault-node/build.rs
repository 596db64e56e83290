//! Sets the linker flags of a Node-API addon (undefined `napi_*` symbols are resolved by Node).
fn main() {
    napi_build::setup();
}
