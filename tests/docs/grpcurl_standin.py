"""A stand-in for the ``grpcurl`` commands the documents show (grpcurl itself cannot be
installed on the build machines: no Debian package, no Go module proxy).

Like grpcurl it knows no .proto file: every type comes from the server's reflection
service, so a document's grpcurl line proves what a grpcurl user would see. It covers
the forms the documents use: ``[-plaintext] [-H 'k: v']... [-d JSON] ADDRESS list``,
``ADDRESS describe SERVICE`` and ``ADDRESS SERVICE/METHOD``, printing JSON the way
grpcurl does (camelCase names, default values omitted, 2-space indent) and failing with
``ERROR:`` / ``Code:`` / ``Message:`` lines and exit status 1.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grpcurl")
    parser.add_argument("-plaintext", action="store_true")
    parser.add_argument("-H", action="append", default=[], dest="headers")
    parser.add_argument("-d", dest="data", default="{}")
    parser.add_argument("address")
    parser.add_argument("verb", nargs="+")
    args = parser.parse_args(argv)
    if not args.plaintext:
        print("grpcurl stand-in: only -plaintext is supported", file=sys.stderr)
        return 2
    with grpc.insecure_channel(args.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        try:
            if args.verb[0] == "list":
                print("\n".join(sorted(database.get_services())))
            elif args.verb[0] == "describe":
                print(describe(pool, args.verb[1]))
            else:
                print(invoke(channel, pool, args.verb[0], args.data, args.headers))
        except grpc.RpcError as error:
            print(f"ERROR:\n  Code: {_code_name(error.code())}\n  Message: {error.details()}")
            return 1
    return 0


def describe(pool: descriptor_pool.DescriptorPool, name: str) -> str:
    service = pool.FindServiceByName(name)
    rows = [f"{name} is a service:", f"service {service.name} {{"]
    for method in service.methods:
        request = ("stream ." if method.client_streaming else ".") + method.input_type.full_name
        reply = ("stream ." if method.server_streaming else ".") + method.output_type.full_name
        rows.append(f"  rpc {method.name} ( {request} ) returns ( {reply} );")
    return "\n".join([*rows, "}"])


def invoke(
    channel: grpc.Channel,
    pool: descriptor_pool.DescriptorPool,
    target: str,
    data: str,
    headers: list[str],
) -> str:
    service_name, _, method_name = target.rpartition("/")
    method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
    request_class = message_factory.GetMessageClass(method.input_type)
    reply_class = message_factory.GetMessageClass(method.output_type)
    request = json_format.Parse(data, request_class())
    call = channel.unary_unary(
        f"/{service_name}/{method_name}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=reply_class.FromString,
    )
    metadata = [tuple(part.strip() for part in h.split(":", 1)) for h in headers]
    reply = call(request, metadata=[(key.lower(), value) for key, value in metadata], timeout=30)
    return json_format.MessageToJson(reply, indent=2)


def _code_name(code: grpc.StatusCode) -> str:
    # grpcurl prints Go's names: NotFound, InvalidArgument, ...
    return "".join(part.capitalize() for part in code.name.split("_"))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
