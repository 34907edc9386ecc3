"""MAE (He et al. 2022) on a timm VisionTransformer: mask 75% of the patches, drop them before
the encoder, reconstruct their (per-patch normalised) pixels with a light decoder.

The encoder is the timm model itself (``patch_embed``, ``cls_token``/``reg_token``, ``pos_embed``,
``blocks``, ``norm``), so the pretrained weights load into any timm ViT for fine-tuning. As in MAE
the encoder's position embedding is a fixed 2-D sine-cosine table. Decoder: ``decoder_depth``
blocks of width ``decoder_dim`` (4 x 256 by default: with MAE's 8 x 512 a ViT-S/8 step at 64 px
costs more in the decoder than in the encoder). Invalid pixels arrive as 0 from the normaliser
and are reconstructed like any other pixel.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from astrobench.augment.pipeline import ViewPipeline
from astrobench.methods.base import Method, create_backbone
from astrobench.methods.components import patchify, random_masking, sincos_pos_embed_2d, unpatchify
from astrobench.methods.losses import mae_loss
from astrobench.registry import register_method


@register_method("mae")
class MAE(Method):
    """Masked autoencoder; ``embed`` = mean of the encoder's patch tokens (no masking)."""

    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"backbone": "vit_tiny_patch16_224", "backbone_options": {"depth": 2, "embed_dim": 64, "num_heads": 2},
                  "decoder_dim": 64, "decoder_depth": 1, "decoder_heads": 2},
        "quick": {"backbone": "vit_tiny_patch16_224", "backbone_options": {"depth": 6},
                  "decoder_dim": 128, "decoder_depth": 2, "decoder_heads": 4},
        "gpu": {},  # ViT-S/8 at 64 px with the light 4 x 256 decoder, as at paper
        "paper": {},
    }
    training: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"optimizer": "adamw", "lr": 1.5e-4, "weight_decay": 0.05},
        # quick: ~1.1 s/step at batch 64, 5x64x64, on 2 CPU cores -> ~2.8 min
        "quick": {"optimizer": "adamw", "lr": 1.5e-3, "weight_decay": 0.05, "steps": 150, "batch_size": 64, "warmup_steps": 15},
        # 100 epochs instead of MAE's 800: a higher base rate (the quick profile's)
        "gpu": {"optimizer": "adamw", "lr": 1.5e-3, "weight_decay": 0.05},
        "paper": {"optimizer": "adamw", "lr": 1.5e-4, "weight_decay": 0.05},
    }
    default_views: ClassVar[tuple[str, ...]] = ("FL", "JC")

    def __init__(
        self,
        in_chans: int,
        image_size: int,
        views: ViewPipeline,
        *,
        backbone: str = "vit_small_patch8_224",
        patch_size: int = 8,
        backbone_options: dict[str, Any] | None = None,
        mask_ratio: float = 0.75,
        decoder_dim: int = 256,
        decoder_depth: int = 4,
        decoder_heads: int = 8,
        norm_pix_loss: bool = True,
    ):
        super().__init__(in_chans, image_size, views)
        from timm.models.vision_transformer import Block, VisionTransformer

        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        try:
            encoder = create_backbone(backbone, in_chans, image_size, patch_size=patch_size, **(backbone_options or {}))
        except TypeError as exc:  # CNNs have no patch size
            raise TypeError(f"MAE needs a timm VisionTransformer backbone; {backbone!r} is not one ({exc})") from exc
        if not isinstance(encoder, VisionTransformer):
            raise TypeError(
                f"MAE needs a timm VisionTransformer backbone (e.g. vit_small_patch8_224); "
                f"{backbone!r} is a {type(encoder).__name__}"
            )
        if getattr(encoder, "dynamic_img_size", False):
            raise ValueError("MAE needs a fixed image size; create the ViT without dynamic_img_size")
        self.backbone = encoder
        self.patch_size = int(patch_size)
        self.mask_ratio = float(mask_ratio)
        self.norm_pix_loss = bool(norm_pix_loss)
        grid = encoder.patch_embed.grid_size
        if grid[0] != grid[1] or grid[0] * patch_size != image_size:
            raise ValueError(f"image size {image_size} must be a multiple of the patch size {patch_size}")
        self.num_patches = grid[0] * grid[1]
        dim, prefix = encoder.embed_dim, encoder.num_prefix_tokens
        if encoder.pos_embed is not None:  # fixed sin-cos positions (MAE); prefix tokens get zeros
            table = sincos_pos_embed_2d(dim, grid[0])
            with torch.no_grad():
                encoder.pos_embed.zero_()
                encoder.pos_embed[0, encoder.pos_embed.shape[1] - self.num_patches :] = table
            encoder.pos_embed.requires_grad_(False)

        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer("decoder_pos_embed", sincos_pos_embed_2d(decoder_dim, grid[0]).unsqueeze(0), persistent=False)
        self.decoder_blocks = nn.Sequential(
            *[Block(decoder_dim, decoder_heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, patch_size * patch_size * in_chans)
        self._num_prefix = prefix
        nn.init.normal_(self.mask_token, std=0.02)
        for module in [self.decoder_embed, self.decoder_blocks, self.decoder_pred]:
            for m in module.modules():
                if isinstance(m, nn.Linear):  # MAE's init
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    # -- encoder / decoder ----------------------------------------------------------------------
    def encode(self, images: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Tokens of the visible patches (prefix tokens first), the mask (1 = hidden) and the order."""
        vit = self.backbone
        x = vit.patch_embed(images)  # (B, L, D)
        b, prefix = x.shape[0], self._num_prefix
        patch_pos, prefix_pos = 0.0, 0.0
        if vit.pos_embed is not None:
            patch_pos = vit.pos_embed[:, vit.pos_embed.shape[1] - self.num_patches :]
            prefix_pos = 0.0 if vit.no_embed_class else vit.pos_embed[:, :prefix]
        x = x + patch_pos
        mask = ids_restore = None
        if mask_ratio > 0:
            x, mask, ids_restore = random_masking(x, mask_ratio)  # masked tokens never enter the encoder
        tokens = [t.expand(b, -1, -1) for t in (vit.cls_token, vit.reg_token) if t is not None]
        if tokens:
            x = torch.cat([torch.cat(tokens, dim=1) + prefix_pos, x], dim=1)
        x = vit.norm_pre(vit.pos_drop(x))
        x = vit.norm(vit.blocks(x))
        return x, mask, ids_restore

    def decode(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Pixel predictions (B, L, p*p*C) for every patch, from the visible tokens."""
        x = self.decoder_embed(latent)
        prefix, visible = x[:, : self._num_prefix], x[:, self._num_prefix :]
        b, kept, d = visible.shape
        full = torch.cat([visible, self.mask_token.expand(b, self.num_patches - kept, d).to(visible.dtype)], dim=1)
        full = torch.gather(full, 1, ids_restore.unsqueeze(-1).expand(-1, -1, d)) + self.decoder_pos_embed
        x = self.decoder_norm(self.decoder_blocks(torch.cat([prefix, full], dim=1)))
        return self.decoder_pred(x[:, self._num_prefix :])

    # -- Method interface -------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images = self.views(batch)
        latent, mask, ids_restore = self.encode(images, self.mask_ratio)
        pred = self.decode(latent, ids_restore)
        loss = mae_loss(pred, patchify(images, self.patch_size), mask, self.norm_pix_loss)
        return {"loss": loss}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        tokens, _, _ = self.encode(images, 0.0)
        return tokens[:, self._num_prefix :].mean(dim=1)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For figures: (reconstruction (B, C, S, S) in the input's units, mask (B, 1, S, S), 1 = hidden).

        With ``norm_pix_loss`` the prediction is per-patch normalised; it is put back in image units
        with each patch's true mean and standard deviation, as in MAE's visualisations.
        """
        latent, mask, ids_restore = self.encode(images, self.mask_ratio)
        pred = self.decode(latent, ids_restore).float()
        if self.norm_pix_loss:
            target = patchify(images, self.patch_size).float()
            pred = pred * (target.var(dim=-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(dim=-1, keepdim=True)
        p, c = self.patch_size, self.in_chans
        recon = unpatchify(pred, p, c)
        mask_image = unpatchify(mask.unsqueeze(-1).expand(-1, -1, p * p * c), p, c)[:, :1]
        return recon, mask_image
