%%% @doc Top supervisor: the output forwarder, the callback server, the stream
%%% controllers, the contexts and the process that starts and stops them, and the
%%% semaphore.
%%%
%%% `rest_for_one': each child may depend on those before it. Contexts send output and
%%% callbacks to the first two. Stream controllers come before the contexts so that, as
%%% the tree stops (in reverse order), the contexts stop while the controllers still run
%%% to pass on to each stream's owner what its context answers for it; a restart of the
%%% contexts leaves the controllers to end their streams the same way. The manager
%%% comes right after the context supervisor, whose children it starts. The semaphore
%%% depends on nothing, so it comes last.
-module(erlang_python_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Children = [#{id => py_output, start => {py_output, start_link, []}},
                #{id => py_callbacks, start => {py_callbacks, start_link, []}},
                #{id => py_stream_sup, start => {py_stream_sup, start_link, []},
                  type => supervisor},
                #{id => py_context_sup, start => {py_context_sup, start_link, []},
                  type => supervisor},
                #{id => py_context_manager, start => {py_context_manager, start_link, []}},
                #{id => py_semaphore, start => {py_semaphore, start_link, []}}],
    {ok, {#{strategy => rest_for_one, intensity => 10, period => 10}, Children}}.
