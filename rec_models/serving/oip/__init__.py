"""The Open Inference Protocol (KServe v2): wire codecs (codecs.py), the models' specs
(specs.py), their inference over the serving core (protocol.py), and its two transports,
v2 REST (rest.py) and gRPC (grpc_server.py)."""
