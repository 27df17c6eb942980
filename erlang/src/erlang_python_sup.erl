%%% @doc Top supervisor: the output forwarder, then the contexts.
-module(erlang_python_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    %% rest_for_one: contexts depend on the output and callback servers started before
    %% them; the semaphore depends on nothing, so it comes last.
    Children = [#{id => py_output, start => {py_output, start_link, []}},
                #{id => py_callbacks, start => {py_callbacks, start_link, []}},
                #{id => py_context_sup, start => {py_context_sup, start_link, []},
                  type => supervisor},
                #{id => py_semaphore, start => {py_semaphore, start_link, []}}],
    {ok, {#{strategy => rest_for_one, intensity => 10, period => 10}, Children}}.
