//! Between serde values of the library and plain Python values (dicts,
//! lists, strings, ints), through JSON so that Python sees exactly the
//! field names `mln show --format json` prints.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `value` as plain Python data.
pub(crate) fn to_py<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// `value` as JSON text, indented by `indent` spaces when given.
pub(crate) fn to_json<T: Serialize>(value: &T, indent: Option<usize>) -> PyResult<String> {
    let result = match indent {
        None => serde_json::to_string(value),
        Some(n) => {
            let pad = vec![b' '; n];
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(&pad);
            let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
            value
                .serialize(&mut ser)
                .map(|()| String::from_utf8_lossy(&out).into_owned())
        }
    };
    result.map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Read a library value from JSON text; `what` names it in the error.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> PyResult<T> {
    serde_json::from_str(text).map_err(|e| PyValueError::new_err(format!("not {what}: {e}")))
}

/// Read a library value from plain Python data; `what` names it in the
/// error.
pub(crate) fn from_py<T: DeserializeOwned>(data: &Bound<'_, PyAny>, what: &str) -> PyResult<T> {
    let text: String = data
        .py()
        .import("json")?
        .call_method1("dumps", (data,))?
        .extract()?;
    from_json(&text, what)
}
