"""SF2F modules: shapes at demo and paper widths, unit norms, the fuser's invariance, the decoder's size check, and
parameter counts equal to the reference's layer list (BAI-Yeqi/SF2F_PyTorch) by explicit arithmetic."""
from __future__ import annotations

import pytest
import torch

from pipeline.families.sf2f.modules import (
    AttentionFuser,
    FaceDecoder,
    IdentityDiscriminator,
    Inception1DBlock,
    PatchDiscriminator,
    VoiceEncoder,
    count_parameters,
)

DEMO_ENCODER = {"channels": (64, 96, 144, 216), "embed_dim": 128}
DEMO_DISC = (16, 32, 64)


# --- the reference's layers, counted by hand -------------------------------------------------------------------

def conv(cin: int, cout: int, kernel_elems: int, bias: bool) -> int:
    return cin * cout * kernel_elems + (cout if bias else 0)


def linear(fan_in: int, fan_out: int, bias: bool) -> int:
    return fan_in * fan_out + (fan_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # weight and bias; running stats are buffers


def ref_encoder(mel=40, channels=(256, 384, 576, 864), out=512) -> int:
    """V2F1DCNN(inception_mode=True): per block, four CNN1DBlocks (Conv1d k=2/3/5/7 no bias + BN1d) of C/4 each;
    then Conv1d(channels[-1], out, 3, bias=True)."""
    total, cin = 0, mel
    for c in channels:
        total += sum(conv(cin, c // 4, k, False) + bn(c // 4) for k in (2, 3, 5, 7))
        cin = c
    return total + conv(cin, out, 3, True)


def ref_fuser(d=512) -> int:
    """AttentionFuserV1 → Attention('general'): linear_in Linear(d, d, bias=False), linear_out Linear(2d, d, bias=False)."""
    return linear(d, d, False) + linear(2 * d, d, False)


def ref_up_block(cin: int, cout: int) -> int:
    """networks.upBlock: Conv2d(cin, 2·cout, 3, bias=False) + BatchNorm2d(2·cout)."""
    return conv(cin, 2 * cout, 9, False) + bn(2 * cout)


def ref_head(c: int) -> int:
    """gnet: Conv2d(c, c, 3) + LeakyReLU + Conv2d(c, 3, 1), both with bias."""
    return conv(c, c, 9, True) + conv(c, 3, 1, True)


def ref_face_gan_decoder(dim=512) -> int:
    """FaceGanDecoder(noise_dim=512, image_size 64): fc Linear(dim, dim·32, no bias) + BN1d(dim·32); upBlocks
    dim→dim/2→dim/4→dim/8→dim/16; head on dim/16."""
    fc = linear(dim, dim * 32, False) + bn(dim * 32)
    ups = sum(ref_up_block(dim >> i, dim >> (i + 1)) for i in range(4))
    return fc + ups + ref_head(dim >> 4)


def ref_face_gan_decoder_v2(dim=512) -> int:
    """FaceGanDecoder_v2: FaceGanDecoder (with its 64-px head gnet_low) + up_mid_layer (dim/16 → dim/32) + gnet_mid."""
    return ref_face_gan_decoder(dim) + ref_up_block(dim >> 4, dim >> 5) + ref_head(dim >> 5)


def ref_cnn(widths=(64, 128, 256), cin=3) -> int:
    """layers.build_cnn('I3,C4-64-2,...', normalization='batch'): Conv2d 4×4 with bias; BN2d before every conv but the first."""
    total = 0
    for i, w in enumerate(widths):
        total += (bn(cin) if i else 0) + conv(cin, w, 16, True)
        cin = w
    return total


def ref_patch_d(widths=(64, 128, 256)) -> int:
    """PatchDiscriminator: build_cnn + classifier Conv2d(widths[-1], 1, 1) with bias."""
    return ref_cnn(widths) + conv(widths[-1], 1, 1, True)


def ref_ac_d(num_ids: int, widths=(64, 128, 256)) -> int:
    """AcDiscriminator: build_cnn → GlobalAvgPool → Linear(D, 1024); real_classifier Linear(1024, 1); id_classifier
    Linear(1024, num_id); all with bias."""
    return ref_cnn(widths) + linear(widths[-1], 1024, True) + linear(1024, 1, True) + linear(1024, num_ids, True)


# --- parameter counts ------------------------------------------------------------------------------------------

def test_the_hand_counts_are_these_numbers() -> None:
    """The arithmetic above, written out (the reference code gives exactly these; the notes' figures are rounded)."""
    assert ref_encoder() == 4_848_192
    assert ref_fuser() == 786_432
    assert ref_face_gan_decoder() == 11_566_083
    assert ref_face_gan_decoder_v2() == 11_577_734
    assert ref_patch_d() == 659_521
    assert ref_ac_d(0) == 923_457


def test_paper_size_parameter_counts_equal_the_reference() -> None:
    assert count_parameters(VoiceEncoder()) == ref_encoder()
    assert count_parameters(AttentionFuser(512)) == ref_fuser()
    assert count_parameters(FaceDecoder(image_size=64)) == ref_face_gan_decoder()
    # 128 px: the reference's v2 minus its 64-px head (gnet_low), which we leave out.
    assert count_parameters(FaceDecoder(image_size=128)) == ref_face_gan_decoder_v2() - ref_head(32)
    assert count_parameters(PatchDiscriminator(64)) == ref_patch_d()
    assert count_parameters(PatchDiscriminator(128, widths=(64, 128, 256, 512))) == ref_patch_d((64, 128, 256, 512))
    for n in (1, 7, 1000):
        assert count_parameters(IdentityDiscriminator(64, n)) == ref_ac_d(n)
        assert count_parameters(IdentityDiscriminator(128, n, widths=(64, 128, 256, 512))) \
            == ref_ac_d(n, (64, 128, 256, 512))


def test_paper_size_counts_are_within_2_percent_of_the_notes_approximations() -> None:
    def near(actual: int, approx: float) -> bool:
        return abs(actual - approx) <= 0.02 * approx

    assert near(count_parameters(VoiceEncoder()), 4.85e6)
    assert near(count_parameters(AttentionFuser(512)), 0.79e6)
    decoder = FaceDecoder(image_size=64)
    assert near(count_parameters(decoder), 11.6e6)
    assert near(count_parameters(decoder.fc[0]), 8.4e6)
    assert near(count_parameters(PatchDiscriminator(64)), 0.66e6)
    num_ids = 200
    assert near(count_parameters(IdentityDiscriminator(64, num_ids)) - 1025 * num_ids, 0.92e6)


# --- shapes and norms ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [100, 125, 150, 151])
def test_inception_block_halves_time_whatever_the_parity(t: int) -> None:
    block = Inception1DBlock(40, 64)
    assert block(torch.randn(2, 40, t)).shape == (2, 64, (t + 1) // 2)


def test_inception_block_refuses_a_width_not_divisible_by_four() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        Inception1DBlock(40, 66)


@pytest.mark.parametrize("kwargs", [DEMO_ENCODER, {}])
def test_encoder_gives_unit_embeddings(kwargs: dict) -> None:
    torch.manual_seed(0)
    enc = VoiceEncoder(**kwargs).eval()
    dim = kwargs.get("embed_dim", 512)
    with torch.no_grad():
        emb = enc(torch.randn(3, 40, 137))
        segs = enc.segment_embeddings(torch.randn(2, 4, 40, 125))
    assert emb.shape == (3, dim)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert segs.shape == (2, 4, dim)
    torch.testing.assert_close(segs.norm(dim=-1), torch.ones(2, 4))


def test_segment_embeddings_equal_encoding_each_segment_alone() -> None:
    torch.manual_seed(0)
    enc = VoiceEncoder(**DEMO_ENCODER).eval()
    x = torch.randn(2, 3, 40, 125)
    with torch.no_grad():
        segs = enc.segment_embeddings(x)
        one = enc(x[1, 2][None])[0]
    torch.testing.assert_close(segs[1, 2], one)


@pytest.mark.parametrize("dim", [128, 512])
def test_fuser_is_unit_norm_and_permutation_invariant(dim: int) -> None:
    torch.manual_seed(0)
    fuser = AttentionFuser(dim)
    x = torch.nn.functional.normalize(torch.randn(3, 5, dim), dim=-1)
    with torch.no_grad():
        out = fuser(x)
        permuted = fuser(x[:, torch.tensor([3, 0, 4, 2, 1])])
    assert out.shape == (3, dim)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(permuted, out, atol=1e-6, rtol=1e-5)


def test_fuser_mask_ignores_padded_segments() -> None:
    torch.manual_seed(0)
    fuser = AttentionFuser(64)
    x = torch.randn(2, 4, 64)
    padded = torch.cat([x[:, :3], torch.randn(2, 1, 64) * 100], dim=1)
    mask = torch.tensor([[True, True, True, False]] * 2)
    with torch.no_grad():
        torch.testing.assert_close(fuser(padded, mask), fuser(x[:, :3]), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="without any real segment"):
        fuser(x, torch.tensor([[True, False, False, False], [False] * 4]))


@pytest.mark.parametrize(("width", "size"), [(128, 64), (64, 64), (64, 128), (512, 64), (512, 128)])
def test_decoder_shapes_and_range(width: int, size: int) -> None:
    torch.manual_seed(0)
    dec = FaceDecoder(embed_dim=128 if width < 512 else 512, image_size=size, width=width)
    with torch.no_grad():
        img = dec(torch.randn(2, dec.embed_dim))
    assert img.shape == (2, 3, size, size)
    assert dec.output_range == (0.0, 1.0)
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0


def test_decoder_channels_never_reach_zero() -> None:
    dec = FaceDecoder(embed_dim=16, image_size=128, width=8)
    convs = [m for m in dec.modules() if isinstance(m, torch.nn.Conv2d)]
    assert min(m.out_channels for m in convs) >= 1 and min(m.in_channels for m in convs) >= 1
    with torch.no_grad():
        assert dec.eval()(torch.randn(2, 16)).shape == (2, 3, 128, 128)


@pytest.mark.parametrize("size", [96, 224, 4, 0, 100])
def test_decoder_refuses_an_unreachable_size_in_one_sentence(size: int) -> None:
    with pytest.raises(ValueError) as info:
        FaceDecoder(image_size=size)
    msg = str(info.value)
    assert "\n" not in msg and msg.endswith(".") and msg.count(". ") == 0
    assert "64" in msg and "128" in msg and str(size) in msg


@pytest.mark.parametrize(("size", "widths", "grid"), [(64, DEMO_DISC, 6), (64, (64, 128, 256), 6),
                                                        (128, (64, 128, 256, 512), 6), (128, (64, 128, 256), 14)])
def test_discriminator_shapes(size: int, widths: tuple, grid: int) -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 3, size, size)
    patch = PatchDiscriminator(size, widths)
    ident = IdentityDiscriminator(size, num_ids=7, widths=widths, hidden=1024 if widths[0] == 64 else 128)
    with torch.no_grad():
        scores = patch(images)
        real_fake, ids = ident(images)
    assert patch.grid == grid and scores.shape == (2, 1, grid, grid)
    assert real_fake.shape == (2,) and ids.shape == (2, 7)


def test_discriminator_follows_the_reference_layer_order() -> None:
    """I3,C4-64-2,C4-128-2,C4-256-2: conv, then (BN, LeakyReLU 0.1, conv) twice, valid padding; nothing after."""
    cnn = PatchDiscriminator(64).cnn
    kinds = [type(m).__name__ for m in cnn]
    assert kinds == ["Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d"]
    assert all(m.negative_slope == 0.1 for m in cnn if isinstance(m, torch.nn.LeakyReLU))
    assert all(m.padding == (0, 0) and m.stride == (2, 2) and m.kernel_size == (4, 4)
               for m in cnn if isinstance(m, torch.nn.Conv2d))


def test_discriminator_refuses_too_small_an_image() -> None:
    with pytest.raises(ValueError, match="too small"):
        PatchDiscriminator(16, (64, 128, 256))


def test_construction_is_seed_deterministic() -> None:
    def build() -> list[torch.nn.Module]:
        torch.manual_seed(123)
        return [VoiceEncoder(**DEMO_ENCODER), AttentionFuser(128), FaceDecoder(128, 64, 64),
                PatchDiscriminator(64, DEMO_DISC), IdentityDiscriminator(64, 5, DEMO_DISC, hidden=64)]

    for a, b in zip(build(), build()):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
