//! The running VM's OTP release, asked once, for the work-arounds that only some releases
//! need. The NIF is built once for every release (the same NIF API), so this is a run-time
//! question, not a build-time one.

use std::ffi::CStr;
use std::sync::OnceLock;

static OTP_RELEASE: OnceLock<u32> = OnceLock::new();

/// The major OTP release ("25", "27"), 0 when the VM's answer is not a number.
pub fn otp_release() -> u32 {
    *OTP_RELEASE.get_or_init(|| {
        let mut info = std::mem::MaybeUninit::<rustler::sys::ErlNifSysInfo>::zeroed();
        // SAFETY: enif_system_info fills at most `size` bytes of the struct we own; the
        // release string it points to is static in the VM.
        let release = unsafe {
            rustler::sys::enif_system_info(
                info.as_mut_ptr(),
                std::mem::size_of::<rustler::sys::ErlNifSysInfo>(),
            );
            let info = info.assume_init();
            if info.otp_release.is_null() {
                return 0;
            }
            CStr::from_ptr(info.otp_release).to_string_lossy().into_owned()
        };
        release.trim().parse().unwrap_or(0)
    })
}

/// Whether a map of more than 32 keys must not be built from arrays, nor decoded from the
/// external format, in a process-independent environment: OTP 25 crashes the VM there.
/// OTP 27 does not (the suites run both ways on it); OTP 26 is not tested and keeps the
/// safe path.
pub fn big_maps_need_process_env() -> bool {
    otp_release() < 27
}
