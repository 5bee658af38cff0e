"""claudecode.v1.ModelService."""

from __future__ import annotations

import grpc

from claudecode.v1 import models_pb2 as pb
from claudecode.v1 import models_pb2_grpc
from core_service.model_catalog import ModelCatalog, ModelEntry


class ModelServicer(models_pb2_grpc.ModelServiceServicer):
    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog

    def _encode(self, entry: ModelEntry) -> pb.Model:
        return pb.Model(
            id=entry.id,
            display_name=entry.display_name,
            aliases=self._catalog.aliases_of(entry.id),
            created=entry.created,
            owned_by="anthropic",
        )

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[self._encode(m) for m in self._catalog.models()])

    async def GetModel(
        self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelResponse:
        return pb.GetModelResponse(model=self._encode(self._catalog.resolve(request.name)))
