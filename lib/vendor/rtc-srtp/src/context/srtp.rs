use super::*;
use shared::{
    error::{Error, Result},
    marshal::{Marshal, MarshalSize, Unmarshal},
};

use bytes::BytesMut;

impl Context {
    /// Decrypts an SRTP packet whose header has already been parsed.
    ///
    /// Saves re-parsing when the caller needed the header to route the packet. The header must
    /// be the one belonging to `encrypted`.
    ///
    /// # Errors
    ///
    /// Fails if authentication fails, if the packet is a replay, or if it is too short to hold
    /// the profile's auth tag.
    pub fn decrypt_rtp_with_header(
        &mut self,
        encrypted: &[u8],
        header: &rtp::Header,
    ) -> Result<BytesMut> {
        let auth_tag_len = self.cipher.rtp_auth_tag_len();
        if encrypted.len() < header.marshal_size() + auth_tag_len {
            return Err(Error::ErrTooShortRtp);
        }

        let state = self.get_srtp_ssrc_state(header.ssrc);
        let (roc, diff, _) = state.next_rollover_count(header.sequence_number);
        if let Some(replay_detector) = &mut state.replay_detector
            && !replay_detector.check(header.sequence_number as u64)
        {
            return Err(Error::SrtpSsrcDuplicated(
                header.ssrc,
                header.sequence_number,
            ));
        }

        let dst = self.cipher.decrypt_rtp(encrypted, header, roc)?;
        {
            let state = self.get_srtp_ssrc_state(header.ssrc);
            if let Some(replay_detector) = &mut state.replay_detector {
                replay_detector.accept();
            }
            state.update_rollover_count(header.sequence_number, diff);
        }

        Ok(dst)
    }

    /// DecryptRTP decrypts a RTP packet with an encrypted payload
    pub fn decrypt_rtp(&mut self, encrypted: &[u8]) -> Result<BytesMut> {
        let mut buf = encrypted;
        let header = rtp::Header::unmarshal(&mut buf)?;
        self.decrypt_rtp_with_header(encrypted, &header)
    }

    /// Encrypts an RTP payload, using an already-parsed header.
    ///
    /// Saves re-parsing when the caller has just built the header. Returns the full protected
    /// packet, header included.
    ///
    /// # Errors
    ///
    /// Fails if the SRTP context has no key for this SSRC or the cipher rejects the input.
    pub fn encrypt_rtp_with_header(
        &mut self,
        plaintext: &[u8],
        header: &rtp::Header,
    ) -> Result<BytesMut> {
        self.encrypt_with_rollover(header, |cipher, roc| {
            cipher.encrypt_rtp(plaintext, header, roc)
        })
    }

    /// owt-rs patch: marshals `packet` into a buffer with room for the authentication tag and
    /// encrypts it there: one allocation and one copy of the payload, where marshalling and then
    /// [`encrypt_rtp_with_header`](Self::encrypt_rtp_with_header) make two of each.
    pub fn encrypt_rtp_packet(&mut self, packet: &rtp::Packet) -> Result<BytesMut> {
        let size = packet.marshal_size();
        let mut buf = BytesMut::with_capacity(
            size + self.cipher.rtp_auth_tag_len() + self.cipher.aead_auth_tag_len(),
        );
        buf.resize(size, 0);
        packet.marshal_to(&mut buf)?;
        let header = &packet.header;
        self.encrypt_with_rollover(header, |cipher, roc| {
            cipher.encrypt_rtp_in_place(&mut buf, header, roc)
        })?;
        Ok(buf)
    }

    /// Encrypts an RTP packet of `header` with `encrypt`, given the cipher and the packet's
    /// rollover counter, and advances the SSRC's rollover state once that succeeded (owt-rs
    /// patch: shared by both ways in, and the state looked up once instead of twice).
    fn encrypt_with_rollover<T>(
        &mut self,
        header: &rtp::Header,
        encrypt: impl FnOnce(&mut dyn Cipher, u32) -> Result<T>,
    ) -> Result<T> {
        let state = srtp_ssrc_state(
            &mut self.srtp_ssrc_states,
            &self.new_srtp_replay_detector,
            header.ssrc,
        );
        let (roc, diff, ovf) = state.next_rollover_count(header.sequence_number);
        if ovf {
            // ... when 2^48 SRTP packets or 2^31 SRTCP packets have been secured with the same key
            // (whichever occurs before), the key management MUST be called to provide new master key(s)
            // (previously stored and used keys MUST NOT be used again), or the session MUST be terminated.
            // https://www.rfc-editor.org/rfc/rfc3711#section-9.2
            return Err(Error::ErrExceededMaxPackets);
        }

        let encrypted = encrypt(self.cipher.as_mut(), roc)?;
        state.update_rollover_count(header.sequence_number, diff);
        Ok(encrypted)
    }

    /// EncryptRTP marshals and encrypts an RTP packet, writing to the dst buffer provided.
    /// If the dst buffer does not have the capacity to hold `len(plaintext) + 10` bytes, a new one will be allocated and returned.
    pub fn encrypt_rtp(&mut self, plaintext: &[u8]) -> Result<BytesMut> {
        let mut buf = plaintext;
        let header = rtp::Header::unmarshal(&mut buf)?;
        self.encrypt_rtp_with_header(plaintext, &header)
    }
}
