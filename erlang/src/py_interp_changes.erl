%%% @doc Interpreter-wide changes (`py:activate_venv/1', `py:deactivate_venv/0',
%%% `py:configure_logging/0,1'), remembered so that a context that starts later in a
%%% sub-interpreter of its own (a pool started after the change, a context restarted
%%% after a crash) makes them too, and serves as the interpreters already running do.
%%%
%%% The main interpreter lives as long as the VM, so its contexts need no replay: what
%%% was changed there stays. The changes are kept in `persistent_term' for the same
%%% reason (they outlive a restart of the application, as the main interpreter's state
%%% does); they are rare, and the latest of each kind replaces the one before.
-module(py_interp_changes).

-export([made/3, replay/1]).

-include_lib("kernel/include/logger.hrl").

-define(KEY, {?MODULE, changes}).
-define(REPLAY_TIMEOUT, 30000).

-type change() :: {module(), atom(), list()}.

%% @doc The change `Module:Function(Args)' was made in every running interpreter:
%% remember it for those that start later.
-spec made(module(), atom(), list()) -> ok.
made(Module, Function, Args) ->
    Kind = kind(Function),
    Kept = [C || {K, _} = C <- changes(), K =/= Kind],
    persistent_term:put(?KEY, Kept ++ [{Kind, {Module, Function, Args}}]).

%% @doc Make the remembered changes, oldest first, on the context `Entry' (a new
%% sub-interpreter context, before it serves anyone). A change that fails there is logged
%% and the context serves anyway, as it would have before the change.
-spec replay(py_context_router:entry()) -> ok.
replay(Entry) ->
    lists:foreach(fun({_, Change}) -> replay_one(Entry, Change) end, changes()).

-spec replay_one(py_context_router:entry(), change()) -> ok.
replay_one(Entry, {Module, Function, Args} = Change) ->
    case py_request:call(Entry, Module, Function, Args, #{}, false, ?REPLAY_TIMEOUT) of
        {ok, _} ->
            ok;
        Error ->
            ?LOG_WARNING("a new sub-interpreter context could not repeat ~p: ~tp",
                         [Change, Error]),
            ok
    end.

changes() ->
    persistent_term:get(?KEY, []).

%% Changes of one kind replace each other: deactivating a venv undoes activating one.
kind(activate_venv) -> venv;
kind(deactivate_venv) -> venv;
kind(configure) -> logging.
