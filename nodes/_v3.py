"""WorldWarp ComfyUI nodes (V3 schema), built from ``specs.SPECS`` around ``ops`` functions."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from . import loop_graph, ops
from .comfy_env import ComfyEnv, register_model_folder
from .specs import CUSTOM_TYPES, SPECS, In, NodeSpec

register_model_folder()
ENV = ComfyEnv()
_CUSTOM = {name: io.Custom(name) for name in CUSTOM_TYPES}
_BASIC = {"IMAGE": io.Image, "MASK": io.Mask, "STRING": io.String, "CONDITIONING": io.Conditioning,
          "SPLAT": io.Splat, "LOAD3D_CAMERA": io.Load3DCamera, "MODEL": io.Model, "VAE": io.Vae, "CLIP": io.Clip,
          "INT": io.Int, "VIDEO": io.Video}


def _socket(kind: str):
    return _CUSTOM.get(kind) or _BASIC[kind]


def _multi(kind: str, name: str, **common):
    """A socket that takes several types, e.g. ``WORLDWARP_MODEL,MODEL``."""
    return io.MultiType.Input(name, types=[_socket(k) for k in kind.split(",")], **common)


def _input(spec: In):
    common = {"tooltip": spec.tooltip, "optional": spec.optional}
    if spec.lazy:
        common["lazy"] = True
    if spec.kind == "INT":
        return io.Int.Input(spec.name, default=spec.default, min=spec.min, max=spec.max, step=spec.step, **common)
    if spec.kind == "FLOAT":
        return io.Float.Input(spec.name, default=spec.default, min=spec.min, max=spec.max, step=spec.step, **common)
    if spec.kind == "BOOLEAN":
        return io.Boolean.Input(spec.name, default=spec.default, **common)
    if spec.kind == "STRING":
        return io.String.Input(spec.name, default=spec.default, multiline=spec.multiline, **common)
    if spec.kind == "COMBO":
        options = spec.options(ENV) if callable(spec.options) else list(spec.options)
        default = spec.default if spec.default in options else (options[0] if options else None)
        return io.Combo.Input(spec.name, options=options, default=default, **common)
    if "," in spec.kind:
        return _multi(spec.kind, spec.name, **common)
    return _socket(spec.kind).Input(spec.name, **common)


def _ui(spec: NodeSpec, cls, outputs, kwargs):
    """What a node shows, as its spec says (``NodeSpec.ui``)."""
    if spec.ui is None:
        return None
    from comfy_api.latest import ui as comfy_ui

    if spec.ui == "images":
        return comfy_ui.PreviewImage(outputs[0], cls=cls)
    if spec.ui == "saved":  # which files went where (web/worldwarp.js shows it)
        return comfy_ui.PreviewText(outputs.ui_text)
    return spec.ui(outputs, **kwargs)


def _make_node(spec: NodeSpec) -> type[io.ComfyNode]:
    role = spec.loop

    def define_schema(cls):
        return io.Schema(node_id=spec.node_id, display_name=spec.display_name, category=spec.category,
                         description=spec.description, inputs=[_input(i) for i in spec.inputs],
                         outputs=[_socket(o.kind).Output(display_name=o.name) for o in spec.outputs],
                         is_output_node=spec.output_node,
                         hidden=[io.Hidden.unique_id, io.Hidden.dynprompt] if role else [],
                         enable_expand=role == "end", is_dev_only=role == "next")

    def check_lazy_status(cls, **kwargs):
        """Loop End asks for the body's outputs only when the chunk is not in the run folder yet (a
        resumed finished run, a re-queue after an interrupt): a saved chunk's body never runs again."""
        if ops.chunk_saved(kwargs.get("loop")):
            return []
        return [i.name for i in spec.inputs if i.lazy and kwargs.get(i.name) is None]

    def execute(cls, **kwargs):
        if role:
            return loop_graph.execute(cls, spec.fn, ENV, role, kwargs, len(spec.outputs))
        outputs = spec.fn(ENV, **kwargs)
        return io.NodeOutput(*outputs, ui=_ui(spec, cls, outputs, kwargs))

    members = {"define_schema": classmethod(define_schema), "execute": classmethod(execute),
               "__doc__": spec.description}
    if any(i.lazy for i in spec.inputs):
        members["check_lazy_status"] = classmethod(check_lazy_status)
    return type(spec.node_id, (io.ComfyNode,), members)


NODES = [_make_node(s) for s in SPECS]


class WorldWarpExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> WorldWarpExtension:
    return WorldWarpExtension()


def _register_routes() -> None:
    """POST /worldwarp/trajectory_preview: the camera path the Camera Trajectory node would make,
    computed by the same core function, for the frontend's live preview (web/worldwarp.js).
    Validation, limits and the off-loop worker are in ``nodes/preview.py``."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return

    from . import preview

    @PromptServer.instance.routes.post("/worldwarp/trajectory_preview")
    async def trajectory_preview(request):
        status, text = await preview.serve(request, preview.MAX_BODY_BYTES, preview.respond)
        return web.Response(text=text, status=status, content_type="application/json")

    # the Camera Director's editor: the same body checks and off-loop worker (nodes/director.py)
    from . import director

    def director_route(name):
        async def respond(raw):
            return await director.respond(name, raw)

        async def answer(request):
            status, text = await preview.serve(request, director.MAX_BODY_BYTES, respond)
            return web.Response(text=text, status=status, content_type="application/json")

        PromptServer.instance.routes.post(f"/worldwarp/director/{name}")(answer)

    for name in director.HANDLERS:
        director_route(name)


def _register_schedule_route() -> None:
    """POST /worldwarp/schedule_preview: σ over the steps of context, warped tokens and holes for the
    Preview Noise Schedule node's live preview (``nodes/schedule_preview.py``)."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return

    from . import preview, schedule_preview

    @PromptServer.instance.routes.post("/worldwarp/schedule_preview")
    async def schedule_curves(request):
        status, text = await preview.serve(request, schedule_preview.MAX_BODY_BYTES,
                                           schedule_preview.respond_off_loop)
        return web.Response(text=text, status=status, content_type="application/json")


def _register_profiles_route() -> None:
    """GET /worldwarp/profiles: for each node with a profile widget, the values each profile gives
    its widgets (``specs.PROFILE_WIDGETS``); the frontend sets them when the profile changes."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return

    from worldwarp_core.pipeline import profile_widget_values
    from worldwarp_core.profiles import PROFILE_NAMES

    from .specs import PROFILE_WIDGETS

    table = {node: {name: profile_widget_values(name, widgets) for name in PROFILE_NAMES}
             for node, widgets in PROFILE_WIDGETS.items()}

    @PromptServer.instance.routes.get("/worldwarp/profiles")
    async def profiles(request):
        return web.json_response(table)


def _register_prompt_handler() -> None:
    """Every queued prompt: each Loop Start gets a digest of its loop's graph as an input
    (``loop_graph.mark_graphs``), so an edited body makes Loop Start run and check again first."""
    try:
        from server import PromptServer
    except ImportError:
        return

    def mark(json_data):
        if isinstance(json_data, dict) and isinstance(json_data.get("prompt"), dict):
            loop_graph.mark_graphs(json_data["prompt"])
        return json_data

    PromptServer.instance.add_on_prompt_handler(mark)


_register_routes()
_register_schedule_route()
_register_profiles_route()
_register_prompt_handler()
