//! What a context does with one request: resolve, convert, run Python, convert back.
//! Runs only on the context's own thread, with the GIL held.

use crate::mailbox::request::{CallSpec, Job, ResultOpts};
use crate::mailbox::Mailbox;
use crate::atoms;
use crate::convert::{py_to_term_with, term_to_py, term_to_py_str, ConvError, ConvOpts};
use crate::py_errors::{exception_to_term, Site};
use crate::mailbox::handles::PyRefRes;
use pyo3::exceptions::{PyNameError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyCode, PyDict, PyModule, PyString, PyTuple};
use pyo3::ffi;
use rustler::{Atom, Encoder, Env, ResourceArc, Term, TermType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use crate::msg_env::RawTerm;

mod frame_builtins;
mod locals_eval;

use frame_builtins::FrameBuiltins;
use locals_eval::LocalsCode;

/// Compiled code is cached per context, keyed by source text and mode.
const CODE_CACHE_LIMIT: usize = 1024;

pub enum Failure {
    Python(PyErr),
    Conv(ConvError),
    BadArg(&'static str),
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Failure::Python(e)
    }
}

impl From<ConvError> for Failure {
    fn from(e: ConvError) -> Self {
        match e {
            ConvError::Python(p) => Failure::Python(p),
            other => Failure::Conv(other),
        }
    }
}

type Outcome<'a> = Result<Term<'a>, Failure>;

/// Per-context Python state. Methods take `&self`: a request may run another request of
/// the same context while it waits for Erlang (re-entrancy), so no borrow of these maps is
/// ever held while Python code runs.
pub struct Executor {
    mailbox: Mailbox,
    envs: RefCell<HashMap<u64, Py<PyDict>>>,
    shared_ns: Py<PyDict>,
    /// Modules named by atoms, keyed by the atom term (atoms are immediates).
    modules: RefCell<HashMap<RawTerm, Py<PyModule>>>,
    code_cache: RefCell<HashMap<(String, bool), Py<PyCode>>>,
    /// `eval` with locals, keyed by `locals_eval::cache_key` (source and local names).
    locals_cache: RefCell<HashMap<String, LocalsCode>>,
    frame_builtins: FrameBuiltins,
    /// Function names given as atoms, as interned attribute paths.
    names: RefCell<HashMap<RawTerm, Vec<Py<PyString>>>>,
}

impl Executor {
    pub fn new(py: Python<'_>, mailbox: Mailbox) -> PyResult<Executor> {
        Ok(Executor {
            mailbox,
            envs: RefCell::new(HashMap::new()),
            shared_ns: new_namespace(py)?,
            modules: RefCell::new(HashMap::new()),
            code_cache: RefCell::new(HashMap::new()),
            locals_cache: RefCell::new(HashMap::new()),
            frame_builtins: FrameBuiltins::new(py)?,
            names: RefCell::new(HashMap::new()),
        })
    }

    pub fn drop_env(&self, env_id: u64) {
        // Dropped after the borrow ends: `__del__` methods may run and re-enter.
        let namespace = self.envs.borrow_mut().remove(&env_id);
        drop(namespace);
    }

    /// Run a synchronous job and give its result term: `{ok, Value}`, `ok` or
    /// `{error, Reason}`.
    pub fn run<'a>(&self, py: Python<'_>, env: Env<'a>, job: Job<Term<'a>>, env_id: u64, site: impl FnOnce(&Job<Term<'a>>) -> Site) -> Term<'a> {
        match self.dispatch(py, env, job, env_id) {
            Ok(term) => term,
            Err(failure) => failure_to_term(py, env, failure, &site(&job)),
        }
    }

    fn dispatch<'a>(&self, py: Python<'_>, env: Env<'a>, job: Job<Term<'a>>, env_id: u64) -> Outcome<'a> {
        match job {
            Job::Call { call, opts } => {
                let result = self.call_value(py, env_id, call)?;
                self.reply_value(env, &result, opts)
            }
            Job::Eval { code, locals } => {
                let result = self.eval_value(py, env_id, code, locals)?;
                Ok(ok_tuple(env, result_to_term(env, &result)?))
            }
            Job::Exec { code } => {
                let ns = self.namespace(py, env_id)?;
                let code = self.compile(py, code, false)?;
                run_code(py, &code, &ns, &ns)?;
                Ok(atoms::ok().encode(env))
            }
            Job::CallMethod { object, method, args, kwargs } => {
                let method = ref_attribute(py, object, method, "method")?;
                let result = call_with(py, &method, args, kwargs)?;
                Ok(ok_tuple(env, result_to_term(env, &result)?))
            }
            Job::GetAttr { object, name } => {
                let value = ref_attribute(py, object, name, "attribute")?;
                Ok(ok_tuple(env, result_to_term(env, &value)?))
            }
            Job::ToTerm { object } => {
                let object = py_ref_object(py, object)?;
                Ok(ok_tuple(env, result_to_term(env, &object)?))
            }
            // Started by `aio` on the loop; never dispatched here.
            Job::AsyncCall { .. } | Job::AsyncGather { .. } | Job::Stream { .. } | Job::StreamEval { .. } | Job::StreamStart { .. } => {
                Err(Failure::BadArg("request"))
            }
        }
    }

    /// `M.F(*A, **Kw)` in the namespace of `env_id`, unconverted.
    pub fn call_value<'py>(&self, py: Python<'py>, env_id: u64, call: CallSpec<Term>) -> Result<Bound<'py, PyAny>, Failure> {
        let ns = self.namespace(py, env_id)?;
        let target = self.resolve(py, &ns, call.module, call.function)?;
        let (args, kwargs) = call_arguments(py, call.args, call.kwargs)?;
        if let Some(result) = self.frame_builtins.call(&target, &ns, &args, kwargs.as_ref()) {
            return Ok(result?);
        }
        Ok(target.call(args, kwargs.as_ref())?)
    }

    /// An expression evaluated in the namespace of `env_id` with `locals`, unconverted.
    /// With no locals the namespace is both globals and locals, as for module code; with
    /// some, see `locals_eval`.
    pub fn eval_value<'py>(&self, py: Python<'py>, env_id: u64, code: Term, locals: Term) -> Result<Bound<'py, PyAny>, Failure> {
        let ns = self.namespace(py, env_id)?;
        let text = term_to_py_str(code).ok_or(Failure::BadArg("code"))?;
        match locals.map_size() {
            Ok(0) => {
                let code = self.compile_text(py, text, true)?;
                Ok(run_code(py, &code, &ns, &ns)?)
            }
            Ok(_) => {
                let locals = term_to_py(py, locals)?;
                let locals = locals.cast::<PyDict>().map_err(PyErr::from)?;
                let code = self.locals_code(py, text, locals)?;
                Ok(locals_eval::run(py, &code, &ns, locals)?)
            }
            Err(_) => Err(Failure::BadArg("locals")),
        }
    }

    /// How to run `text` with these locals, compiled once per source and set of names.
    fn locals_code(&self, py: Python<'_>, text: String, locals: &Bound<'_, PyDict>) -> Result<LocalsCode, Failure> {
        let key = match locals_eval::cache_key(text, locals) {
            Ok(key) => key,
            Err(text) => return Ok(LocalsCode::Mapping(self.compile_text(py, text, true)?.unbind())),
        };
        if let Some(code) = self.locals_cache.borrow().get(&key) {
            return Ok(code.clone_ref(py));
        }
        // The expression alone first: its errors (a statement, bad syntax) are those of
        // `eval/1`, and what the lambda form would accept beyond it (`yield`) is refused.
        let expr = self.compile_text(py, locals_eval::key_text(&key).to_owned(), true)?;
        let code = match locals_eval::compile_params(py, &key)? {
            Some(body) => LocalsCode::Params(body.unbind()),
            None => LocalsCode::Mapping(expr.unbind()),
        };
        let mut cache = self.locals_cache.borrow_mut();
        if cache.len() >= CODE_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, code.clone_ref(py));
        Ok(code)
    }

    fn namespace<'py>(&self, py: Python<'py>, env_id: u64) -> PyResult<Bound<'py, PyDict>> {
        if env_id == 0 {
            return Ok(self.shared_ns.bind(py).clone());
        }
        if let Some(ns) = self.envs.borrow().get(&env_id) {
            return Ok(ns.bind(py).clone());
        }
        let ns = new_namespace(py)?;
        self.envs.borrow_mut().insert(env_id, ns.clone_ref(py));
        Ok(ns.into_bound(py))
    }

    /// The callable named by module `m` and (possibly dotted) function name `f`.
    /// Module `'__main__'` means the caller's own namespace.
    fn resolve<'py>(&self, py: Python<'py>, ns: &Bound<'py, PyDict>, m: Term, f: Term) -> Result<Bound<'py, PyAny>, Failure> {
        let path = self.attribute_path(py, f)?;
        let (first, rest) = path.split_first().ok_or(Failure::BadArg("function"))?;
        let first = first.bind(py);
        let mut target = if is_main(m) {
            match ns.get_item(first)? {
                Some(v) => v,
                None => py.import("__main__")?.getattr(first).map_err(|_| {
                    PyNameError::new_err(format!("name '{first}' is not defined"))
                })?,
            }
        } else {
            self.module(py, m)?.getattr(first)?
        };
        for attr in rest {
            target = target.getattr(attr.bind(py))?;
        }
        Ok(target)
    }

    /// The interned parts of a (possibly dotted) function name; cached for atoms, whose
    /// interned strings keep their hash, so lookups skip hashing and allocation.
    fn attribute_path(&self, py: Python<'_>, f: Term) -> Result<Vec<Py<PyString>>, Failure> {
        let is_atom = f.get_type() == TermType::Atom;
        if is_atom {
            if let Some(path) = self.names.borrow().get(&f.as_c_arg()) {
                return Ok(path.iter().map(|p| p.clone_ref(py)).collect());
            }
        }
        let name = name_text(f, "function")?;
        let path: Vec<Py<PyString>> = name.split('.').map(|part| PyString::intern(py, part).unbind()).collect();
        if is_atom {
            self.names.borrow_mut().insert(f.as_c_arg(), path.iter().map(|p| p.clone_ref(py)).collect());
        }
        Ok(path)
    }

    fn module<'py>(&self, py: Python<'py>, m: Term) -> Result<Bound<'py, PyModule>, Failure> {
        let key = m.as_c_arg();
        let is_atom = m.get_type() == TermType::Atom;
        if is_atom {
            if let Some(module) = self.modules.borrow().get(&key) {
                return Ok(module.bind(py).clone());
            }
        }
        let name = name_text(m, "module")?;
        let module = py.import(name.as_str())?;
        if is_atom {
            self.modules.borrow_mut().insert(key, module.clone().unbind());
        }
        Ok(module)
    }

    fn compile<'py>(&self, py: Python<'py>, code: Term, eval: bool) -> Result<Bound<'py, PyCode>, Failure> {
        let text = term_to_py_str(code).ok_or(Failure::BadArg("code"))?;
        self.compile_text(py, text, eval)
    }

    fn compile_text<'py>(&self, py: Python<'py>, text: String, eval: bool) -> Result<Bound<'py, PyCode>, Failure> {
        let key = (text, eval);
        if let Some(compiled) = self.code_cache.borrow().get(&key) {
            return Ok(compiled.bind(py).clone());
        }
        let source = CString::new(key.0.as_str())
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("source code contains a NUL byte"))?;
        let mode = if eval { pyo3::types::code::PyCodeInput::Eval } else { pyo3::types::code::PyCodeInput::File };
        let compiled = PyCode::compile(py, &source, c"<erlang>", mode)?;
        let mut cache = self.code_cache.borrow_mut();
        if cache.len() >= CODE_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, compiled.clone().unbind());
        Ok(compiled)
    }

    fn reply_value<'a>(&self, env: Env<'a>, value: &Bound<'_, PyAny>, opts: ResultOpts) -> Outcome<'a> {
        if opts.return_ref {
            let res = ResourceArc::new(PyRefRes::new(value.clone(), self.mailbox.clone()));
            return Ok(ok_tuple(env, res.encode(env)));
        }
        let defaults = ConvOpts::for_results();
        let conv = ConvOpts { strict: opts.strict.unwrap_or(defaults.strict), arrays: opts.arrays };
        let _timed = crate::trace::convert_timer();
        Ok(ok_tuple(env, py_to_term_with(env, value, conv)?))
    }
}

/// A request's result with no options of its own: converted as the app env says.
pub fn result_to_term<'a>(env: Env<'a>, value: &Bound<'_, PyAny>) -> Result<Term<'a>, ConvError> {
    let _timed = crate::trace::convert_timer();
    py_to_term_with(env, value, ConvOpts::for_results())
}

/// Attribute `name` of the object behind a py ref (`what` names a bad name in errors).
fn ref_attribute<'py>(py: Python<'py>, py_ref: Term, name: Term, what: &'static str) -> Result<Bound<'py, PyAny>, Failure> {
    let object = py_ref_object(py, py_ref)?;
    let name = name_text(name, what)?;
    Ok(object.getattr(name.as_str())?)
}

/// A module, function or attribute name. Python's C API reads names up to a NUL byte, so
/// `"os\0junk"` would import `os`: a name holding one is refused.
fn name_text(term: Term, what: &'static str) -> Result<String, Failure> {
    term_to_py_str(term)
        .filter(|name| !name.contains('\0'))
        .ok_or(Failure::BadArg(what))
}

fn is_main(m: Term) -> bool {
    match m.decode::<Atom>() {
        Ok(atom) => atom == atoms::main_module(),
        Err(_) => term_to_py_str(m).as_deref() == Some("__main__"),
    }
}

/// A fresh process-bound namespace: a module-like dict with `erlang` pre-bound.
fn new_namespace(py: Python<'_>) -> PyResult<Py<PyDict>> {
    let ns = PyDict::new(py);
    ns.set_item("__builtins__", py.import("builtins")?)?;
    ns.set_item("__name__", "__main__")?;
    ns.set_item("erlang", py.import("erlang")?)?;
    Ok(ns.unbind())
}

/// Module-level code with `globals`; `locals` is the same dict but for `eval` with locals.
fn run_code<'py>(py: Python<'py>, code: &Bound<'py, PyCode>, globals: &Bound<'py, PyDict>, locals: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the code object, the globals dict and the locals mapping are held by the
    // caller's `Bound`s for the whole call; PyEval_EvalCode returns a new reference or
    // NULL with an exception set, which `from_owned_ptr_or_err` takes over.
    unsafe {
        let result = ffi::PyEval_EvalCode(code.as_ptr(), globals.as_ptr(), locals.as_ptr());
        Bound::from_owned_ptr_or_err(py, result)
    }
}

fn call_with<'py>(py: Python<'py>, target: &Bound<'py, PyAny>, args: Term, kwargs: Term) -> Result<Bound<'py, PyAny>, Failure> {
    let (args, kwargs) = call_arguments(py, args, kwargs)?;
    Ok(target.call(args, kwargs.as_ref())?)
}

/// Positional arguments from a list, keyword arguments from a map.
fn call_arguments<'py>(py: Python<'py>, args: Term, kwargs: Term) -> Result<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>), Failure> {
    let _timed = crate::trace::convert_timer();
    let items = crate::convert::proper_list(args).ok_or(Failure::BadArg("args"))?;
    let mut converted = Vec::with_capacity(items.len());
    for item in items {
        converted.push(term_to_py(py, item)?);
    }
    Ok((PyTuple::new(py, converted)?, kwargs_dict(py, kwargs)?))
}

/// Keyword arguments from a map whose keys are atoms, binaries or strings.
fn kwargs_dict<'py>(py: Python<'py>, kwargs: Term) -> Result<Option<Bound<'py, PyDict>>, Failure> {
    match kwargs.map_size() {
        Ok(0) => Ok(None),
        Ok(_) => {
            let dict = PyDict::new(py);
            for (k, v) in rustler::MapIterator::new(kwargs).ok_or(Failure::BadArg("kwargs"))? {
                let key = term_to_py_str(k)
                    .ok_or_else(|| PyTypeError::new_err("keyword argument names must be atoms, binaries or strings"))?;
                dict.set_item(PyString::new(py, &key), term_to_py(py, v)?)?;
            }
            Ok(Some(dict))
        }
        Err(_) => Err(Failure::BadArg("kwargs")),
    }
}

fn py_ref_object<'py>(py: Python<'py>, term: Term) -> Result<Bound<'py, PyAny>, Failure> {
    let res: ResourceArc<PyRefRes> = term.decode().map_err(|_| Failure::BadArg("py_ref"))?;
    res.object(py).ok_or(Failure::BadArg("py_ref"))
}

pub fn ok_tuple<'a>(env: Env<'a>, value: Term<'a>) -> Term<'a> {
    (atoms::ok(), value).encode(env)
}

/// `{error, Reason}` for a failed job; a Python exception's reason is made (and its
/// traceback logged) by `py_errors`, knowing where it happened from `site`.
pub fn failure_to_term<'a>(py: Python<'_>, env: Env<'a>, failure: Failure, site: &Site) -> Term<'a> {
    let reason = match failure {
        // `From<ConvError>` makes Python errors `Failure::Python`; the second shape is for
        // a `Failure::Conv` built by hand.
        Failure::Python(err) | Failure::Conv(ConvError::Python(err)) => exception_to_term(py, env, &err, site),
        Failure::Conv(ConvError::Unsupported(raw)) => {
            // SAFETY: every caller encodes the failure in the environment whose terms were
            // being converted (a request's own, while it is held): `raw` is a term of it.
            let term = unsafe { Term::new(env, raw) };
            (atoms::unsupported_term(), term).encode(env)
        }
        Failure::Conv(ConvError::TooDeep(max)) => (atoms::nesting_too_deep(), max).encode(env),
        Failure::Conv(ConvError::Unconvertible(name)) => (crate::convert::unconvertible(), name.as_str()).encode(env),
        Failure::BadArg(what) => (atoms::badarg(), rustler::types::atom::Atom::from_str(env, what).unwrap()).encode(env),
    };
    (atoms::error(), reason).encode(env)
}
