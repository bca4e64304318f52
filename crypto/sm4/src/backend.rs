//! The glue every backend shares: the cipher crate's backend traits over plain arrays.
//!
//! A backend module defines `Keys<'a>(&'a [u32; 32])` with `one`, `par` and `tail` methods
//! working in place on `[u8; 16]` blocks; this macro copies the caller's blocks in and out.
//! The copies cost a few loads per block against 32 rounds, and keep `unsafe` pointer work
//! inside the backends' own load and store helpers.

/// Implements `BlockCipherEncBackend` and `BlockCipherDecBackend` for `$keys` with
/// `$par` (a typenum) blocks per batch, `$n` as a `usize`.
macro_rules! impl_block_backend {
    ($keys:ident, $par:ty, $n:expr) => {
        impl cipher::BlockSizeUser for $keys<'_> {
            type BlockSize = cipher::consts::U16;
        }

        impl cipher::ParBlocksSizeUser for $keys<'_> {
            type ParBlocksSize = $par;
        }

        impl cipher::BlockCipherEncBackend for $keys<'_> {
            #[inline(always)]
            fn encrypt_block(&self, block: cipher::inout::InOut<'_, '_, cipher::Block<Self>>) {
                self.inout_one::<false>(block)
            }

            #[inline(always)]
            fn encrypt_par_blocks(&self, blocks: cipher::inout::InOut<'_, '_, cipher::ParBlocks<Self>>) {
                self.inout_par::<false>(blocks)
            }

            #[inline(always)]
            fn encrypt_tail_blocks(&self, blocks: cipher::inout::InOutBuf<'_, '_, cipher::Block<Self>>) {
                self.inout_tail::<false>(blocks)
            }
        }

        impl cipher::BlockCipherDecBackend for $keys<'_> {
            #[inline(always)]
            fn decrypt_block(&self, block: cipher::inout::InOut<'_, '_, cipher::Block<Self>>) {
                self.inout_one::<true>(block)
            }

            #[inline(always)]
            fn decrypt_par_blocks(&self, blocks: cipher::inout::InOut<'_, '_, cipher::ParBlocks<Self>>) {
                self.inout_par::<true>(blocks)
            }

            #[inline(always)]
            fn decrypt_tail_blocks(&self, blocks: cipher::inout::InOutBuf<'_, '_, cipher::Block<Self>>) {
                self.inout_tail::<true>(blocks)
            }
        }

        impl $keys<'_> {
            #[inline(always)]
            fn inout_one<const DEC: bool>(&self, mut block: cipher::inout::InOut<'_, '_, cipher::Block<Self>>) {
                let mut b: [u8; 16] = (*block.get_in()).into();
                self.one::<DEC>(&mut b);
                *block.get_out() = b.into();
            }

            #[inline(always)]
            fn inout_par<const DEC: bool>(&self, mut blocks: cipher::inout::InOut<'_, '_, cipher::ParBlocks<Self>>) {
                let mut b = [[0u8; 16]; $n];
                for (d, s) in b.iter_mut().zip(blocks.get_in().iter()) {
                    *d = (*s).into();
                }
                self.par::<DEC>(&mut b);
                for (d, s) in blocks.get_out().iter_mut().zip(b.iter()) {
                    *d = (*s).into();
                }
            }

            #[inline(always)]
            fn inout_tail<const DEC: bool>(&self, mut blocks: cipher::inout::InOutBuf<'_, '_, cipher::Block<Self>>) {
                let n = blocks.len();
                assert!(n < $n);
                let mut b = [[0u8; 16]; $n];
                for (d, s) in b.iter_mut().zip(blocks.get_in().iter()) {
                    *d = (*s).into();
                }
                self.tail::<DEC>(&mut b, n);
                for (d, s) in blocks.get_out().iter_mut().zip(b.iter()) {
                    *d = (*s).into();
                }
            }
        }
    };
}
