%%% @doc Placeholder replaced by the overload-protection semaphore (issue 4).
-module(py_semaphore).
-export([start_link/0]).
-spec start_link() -> ignore.
start_link() -> ignore.
