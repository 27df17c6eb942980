%%% @doc Supervises the controllers of `py:stream_start/3,4' streams (see `py_stream'),
%%% one temporary child per running stream, and owns the index of running streams.
%%%
%%% Children are never restarted: a controller that ended, crashed or was shut down
%%% takes its stream with it (the NIF cancels a stream whose controller is gone), and
%%% starting it again would produce items nobody asked for. The index table is created
%%% in `init/1', so it belongs to this process: when the supervisor goes, the table and
%%% every controller it lists go together, and a new supervisor starts with both empty.
-module(py_stream_sup).
-behaviour(supervisor).

-export([start_link/0, start_controller/1, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc Start a controller with the arguments of `py_stream:start_link/6'.
-spec start_controller([term()]) -> {ok, pid()} | {error, term()}.
start_controller(Args) ->
    supervisor:start_child(?MODULE, Args).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    ok = py_stream:new_index(),
    Controller = #{id => py_stream, start => {py_stream, start_link, []},
                   restart => temporary, shutdown => 1000, modules => [py_stream]},
    {ok, {#{strategy => simple_one_for_one, intensity => 10, period => 10}, [Controller]}}.
