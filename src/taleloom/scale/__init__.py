"""Scale-out: the model roles as Ray Serve deployments (`deployments.py`), the `ray:` backends that call
them (`ray_backends.py`) and the local cluster that runs them (`cluster.py`); `taleloom ray up` starts it all.
Needs the optional extra: pip install 'taleloom[ray]'."""
