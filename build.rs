//! Link the Python chosen by `PYO3_PYTHON` (the Makefile sets it from `PYTHON`, default the
//! `python3` on PATH) and record its library directory as rpath, so the NIF loads that
//! libpython and not another of the same version.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    // `cfg(Py_3_12)` and friends: sub-interpreters with their own GIL need 3.12.
    pyo3_build_config::use_pyo3_cfgs();
    // Set for every crate by .cargo/config.toml; src/lib.rs checks them.
    println!("cargo::rustc-check-cfg=cfg(pyo3_disable_reference_pool)");
    println!("cargo::rustc-check-cfg=cfg(pyo3_leak_on_drop_without_reference_pool)");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=PYTHON");
}
