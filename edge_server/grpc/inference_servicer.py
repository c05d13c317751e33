"""edge.v1.InferenceService: Predict, PredictStream and Health over the domain."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_contracts.rpc_boundary import rpc_boundary
from edge_contracts.status import status_for
from edge_server.catalogue.serving import ServingCatalogue
from edge_server.gateway_info import GatewayInfo as GatewayInfo  # re-exported
from edge_server.grpc.ordered_stream import answer_in_order
from edge_server.inference.predictor import Predictor, PredictOutput
from edge_server.inference.request_metrics import observed
from edge_server.metrics import GatewayMetrics
from edge_server.wire import edge_v1 as converters

# Frames of one PredictStream processed at once: decode of frame N+1 overlaps the
# inference of frame N, and a slow client cannot pile up unbounded work.
STREAM_WINDOW = 4


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(
        self,
        predictor: Predictor,
        models: ServingCatalogue,
        metrics: GatewayMetrics,
        info: GatewayInfo,
    ) -> None:
        self._predictor = predictor
        self._models = models
        self._metrics = metrics
        self._info = info

    async def _predict(
        self, method: str, request: inference_pb2.PredictRequest, time_remaining: float | None
    ) -> PredictOutput:
        """One prediction with its metrics; a failure is raised after it is counted."""
        model = self._metrics.model_label(
            request.model_name or self._models.default_model, self._models
        )
        return await observed(
            self._metrics,
            method,
            model,
            time_remaining,
            lambda: self._predictor.predict(converters.to_predict_input(request, time_remaining)),
        )

    @rpc_boundary
    async def Predict(
        self, request: inference_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.PredictResponse:
        result = await self._predict("Predict", request, context.time_remaining())
        return converters.to_predict_response(result, request.request_id)

    async def _frame(
        self, request: inference_pb2.PredictRequest, time_remaining: float | None
    ) -> inference_pb2.PredictStreamResponse:
        try:
            result = await self._predict("PredictStream", request, time_remaining)
        except Exception as exc:
            # A frame's failure is reported inside the stream, which goes on (by design).
            status = status_for(exc)
            return inference_pb2.PredictStreamResponse(
                request_id=request.request_id,
                error=inference_pb2.FrameError(code=status.code.value[0], message=status.message),
            )
        return inference_pb2.PredictStreamResponse(
            request_id=request.request_id,
            response=converters.to_predict_response(result, request.request_id),
        )

    @rpc_boundary
    async def PredictStream(
        self,
        request_iterator: AsyncIterator[inference_pb2.PredictStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[inference_pb2.PredictStreamResponse]:
        async def answer(
            frame: inference_pb2.PredictStreamRequest,
        ) -> inference_pb2.PredictStreamResponse:
            return await self._frame(frame.request, context.time_remaining())

        async for response in answer_in_order(request_iterator, answer, STREAM_WINDOW):
            yield response

    @rpc_boundary
    async def Health(
        self, request: inference_pb2.HealthRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.HealthResponse:
        return converters.to_health_response(self._models, self._info)
