"""The Redis store, on one server or a Redis Cluster.

- :mod:`.store`: :class:`RedisSessionStore`, which runs one script per call (and says
  why every key of a user shares one hash tag);
- :mod:`.keys`: the key space, every key name in one place;
- :mod:`.codec`: sessions and turns as Redis holds them (JSON, zstd);
- :mod:`.scripts`: the Lua scripts (``scripts/*.lua``), each with its KEYS and ARGV;
- :mod:`.cluster`: the client of a ``redis+cluster://`` URL;
- :mod:`.sentinel`: the client of a ``redis+sentinel://`` URL and its startup check;
- :mod:`.gate`: what makes calls wait for a free connection where the pool would not;
- :mod:`.connection`: the connection class of every client the store makes;
- :mod:`.packing`, :mod:`.replication`: hiredis packing, and WAIT behind writes.
"""

from agent_sessions.store.redis.store import RedisSessionStore

__all__ = ["RedisSessionStore"]
