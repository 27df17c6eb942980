%%% @doc What this Python offers for running contexts in sub-interpreters, and the mode
%%% names users write, read once here.
%%%
%%% A context runs in the main interpreter (mode `worker', the NIF's `main') or in a
%%% sub-interpreter of its own created with its own GIL (modes `subinterp' and `owngil',
%%% two names for the NIF's `own_gil'), which needs CPython 3.12 or newer (PEP 684).
%%% Every function that takes a mode answers `{error, {unsupported_mode, Mode}}', with
%%% the user's own atom, when this Python cannot run it, and starts nothing.
-module(py_subinterp).

-export([supported/0, free_threaded/0, resolve_mode/1, user_mode/1]).

%% A mode as users write it (`py:start_contexts/1', the `pools' and `context_mode' app
%% env).
-type user_mode() :: worker | subinterp | owngil.
-export_type([user_mode/0]).

%% @doc Whether contexts may run in sub-interpreters with their own GIL (CPython 3.12+).
-spec supported() -> boolean().
supported() ->
    feature(subinterp).

%% @doc Whether this CPython is a free-threaded build (`Py_GIL_DISABLED').
-spec free_threaded() -> boolean().
free_threaded() ->
    feature(free_threaded).

%% @doc The NIF's mode for a user's mode name, or why it cannot run here.
-spec resolve_mode(term()) -> {ok, py_context_router:mode()} | {error, term()}.
resolve_mode(worker) ->
    {ok, main};
resolve_mode(Mode) when Mode =:= subinterp; Mode =:= owngil ->
    case supported() of
        true -> {ok, own_gil};
        false -> {error, {unsupported_mode, Mode}}
    end;
resolve_mode(Mode) ->
    {error, {badarg, {mode, Mode}}}.

%% @doc The name a running pool's mode is reported under.
-spec user_mode(py_context_router:mode()) -> worker | subinterp.
user_mode(main) -> worker;
user_mode(own_gil) -> subinterp.

%% The NIF answers from the Python it is linked to; cached, as that never changes while
%% the library is loaded. A NIF that cannot answer (not loaded) counts as `false'.
feature(Name) ->
    Features = case persistent_term:get({?MODULE, features}, undefined) of
                   undefined ->
                       case catch py_nif:python_features() of
                           #{} = F -> persistent_term:put({?MODULE, features}, F), F;
                           _ -> #{}
                       end;
                   F ->
                       F
               end,
    maps:get(Name, Features, false) =:= true.
