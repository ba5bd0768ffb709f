"""ComfyUI's services for the node functions: model folders, output folder, progress, interruption.

Only imported inside ComfyUI. Tests use a stand-in with the same methods (tests/test_nodes.py).
"""

from __future__ import annotations

import os

import folder_paths
import torch

from worldwarp_core.inputs import check_name, path_inside

WORLDWARP_FOLDER = "worldwarp"


def register_model_folder() -> None:
    """models/worldwarp holds geometry models, VLMs, tokenizers and diffusers folders (any file type)."""
    if WORLDWARP_FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(WORLDWARP_FOLDER, os.path.join(folder_paths.models_dir, WORLDWARP_FOLDER))


class ComfyEnv:
    def models_list(self, folder: str) -> list[str]:
        if folder == WORLDWARP_FOLDER:  # model folders, not files
            names = []
            for base in folder_paths.get_folder_paths(folder):
                if os.path.isdir(base):
                    names += sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
            return names
        return folder_paths.get_filename_list(folder)

    def full_path(self, folder: str, name: str) -> str:
        if folder == WORLDWARP_FOLDER:
            for base in folder_paths.get_folder_paths(folder):
                p = os.path.join(base, name)
                if os.path.isdir(p):
                    return p
            raise ValueError(f"folder '{name}' not found in models/{folder} ({folder_paths.get_folder_paths(folder)})")
        return folder_paths.get_full_path_or_raise(folder, name)

    def output_path(self, relative: str, option: str = "output_folder") -> str:
        """``relative`` under the output folder, links resolved first (as ComfyUI's Save nodes do)."""
        return path_inside(folder_paths.get_output_directory(), relative, option)

    def save_target(self, filename_prefix: str) -> tuple[str, str]:
        """ComfyUI's counter naming, as its Save nodes do: the folder (created) and the file stem
        ``<prefix name>_<counter:05>_`` for ``filename_prefix`` under the output folder."""
        check_name(filename_prefix, "filename_prefix", "a file name under ComfyUI's output folder")
        self.output_path(filename_prefix, "filename_prefix")  # a prefix that leaves the output folder
        folder, name, counter, _, _ = folder_paths.get_save_image_path(filename_prefix,
                                                                       folder_paths.get_output_directory())
        os.makedirs(folder, exist_ok=True)
        return folder, f"{name}_{counter:05}_"

    def output_dir(self) -> str:
        return os.path.abspath(folder_paths.get_output_directory())

    def input_dir(self) -> str:
        return folder_paths.get_input_directory()

    def device(self) -> str:
        import comfy.model_management as mm

        return str(mm.get_torch_device())

    def free_memory(self) -> float | None:
        """Free bytes on ComfyUI's torch device (what its model management can still use), None off CUDA."""
        import comfy.model_management as mm

        device = mm.get_torch_device()
        if getattr(device, "type", "cpu") != "cuda":
            return None
        return float(mm.get_free_memory(device))

    def progress(self, total: int):
        import comfy.utils

        return comfy.utils.ProgressBar(total)

    def latent_preview(self, x0):
        """A cheap RGB preview of an x0 estimate ``[C, F, h, w]`` (normalised Wan latents): ComfyUI's own
        Wan2.1 latent-to-RGB factors on the last latent frame, as its latent previews do."""
        if x0 is None:
            return None
        try:
            from comfy.latent_formats import Wan21
            from PIL import Image
        except ImportError:
            return None
        fmt = Wan21()
        w = torch.tensor(fmt.latent_rgb_factors, dtype=torch.float32)  # [C, 3]
        b = torch.tensor(fmt.latent_rgb_factors_bias, dtype=torch.float32)
        rgb = x0[:, -1].float().cpu().permute(1, 2, 0) @ w + b  # [h, w, 3]
        img = ((rgb + 1) / 2).clamp(0, 1).mul(255).byte().numpy()
        return ("JPEG", Image.fromarray(img), 512)

    def progress_text(self, text: str, node_id: str) -> None:
        """A line of text under the node (the frontend's progress text)."""
        from server import PromptServer

        server = PromptServer.instance
        server.send_progress_text(text, node_id, server.client_id)

    def make_video(self, frames, fps: int):
        """Frames ``[F, H, W, 3]`` as core ``VIDEO`` (Save Video, Create Video's output type)."""
        from fractions import Fraction

        from comfy_api.latest import InputImpl, Types

        return InputImpl.VideoFromComponents(Types.VideoComponents(images=frames, frame_rate=Fraction(fps)))

    def check_interrupt(self) -> None:
        import comfy.model_management as mm

        mm.throw_exception_if_processing_interrupted()

    def make_splat(self, fields: dict | None):
        if fields is None:
            return None
        from comfy_api.latest import Types

        return Types.SPLAT(**fields)


__all__ = ["ComfyEnv", "register_model_folder"]
